"""⑤ Writes to the local copies: deals, contacts, companies and their links."""

from amosync.upsert.deal_links import replace_deal_embedded
from amosync.upsert.deals import mark_deals_deleted, replace_deal_links, upsert_deals
from amosync.upsert.field_values import replace_field_values
from amosync.upsert.people import mark_people_deleted, missing_ids, upsert_people

__all__ = [
    "mark_deals_deleted",
    "mark_people_deleted",
    "missing_ids",
    "replace_deal_embedded",
    "replace_deal_links",
    "replace_field_values",
    "upsert_deals",
    "upsert_people",
]
