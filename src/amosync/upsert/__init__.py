"""⑤ Writes to the local copies: deals, contacts, companies and their links."""

from amosync.upsert.deals import mark_deals_deleted, replace_deal_links, upsert_deals
from amosync.upsert.people import mark_people_deleted, missing_ids, upsert_people

__all__ = [
    "mark_deals_deleted",
    "mark_people_deleted",
    "missing_ids",
    "replace_deal_links",
    "upsert_deals",
    "upsert_people",
]
