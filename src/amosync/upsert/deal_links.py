"""Statements on `amocrm_deal_tags` and `amocrm_deal_companies`: a lead's `_embedded`.

Like the contact links (deals.py), made exactly the copy's for the deals the newer-wins
rule wrote, in the same transaction: amoCRM lists every tag and company of a lead each
time. Deals whose tags or companies did not change are left alone (owned_rows.py). A
company we have not stored is queued for a fetch by the caller (worker/apply.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.mapping import lead_company_ids, lead_tags
from amosync.core.records import DealRecord
from amosync.db.tables import deal_companies, deal_tags
from amosync.upsert.owned_rows import replace_changed


async def replace_deal_embedded(
    conn: AsyncConnection, records: Sequence[DealRecord], ids: Iterable[int]
) -> None:
    """Make the stored tags and companies of the deals `ids` exactly their copies'."""
    written = set(ids)
    # One copy per id (the last), as the upsert keeps: a duplicate would break the key.
    wanted = list({r.id: r for r in records if r.id in written}.values())
    if not wanted:
        return
    tags = {
        r.id: [
            {"deal_id": r.id, "tag_id": tag_id, "name": name}
            for tag_id, name in lead_tags(r.raw).items()
        ]
        for r in wanted
    }
    await replace_changed(conn, deal_tags, "deal_id", tags)
    links = {
        r.id: [{"deal_id": r.id, "company_id": cid} for cid in lead_company_ids(r.raw)]
        for r in wanted
    }
    await replace_changed(conn, deal_companies, "deal_id", links)
