"""Statements on `amocrm_deal_tags` and `amocrm_deal_companies`: a lead's `_embedded`.

Like the contact links (deals.py), replaced as a whole for the deals the newer-wins rule
wrote, in the same transaction: amoCRM lists every tag and company of a lead each time.
A company we have not stored is queued for a fetch by the caller (worker/apply.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.mapping import lead_company_ids, lead_tags
from amosync.core.records import DealRecord
from amosync.db.tables import deal_companies, deal_tags
from amosync.upsert.entity import power_of_two_chunks


async def replace_deal_embedded(
    conn: AsyncConnection, records: Sequence[DealRecord], ids: Iterable[int]
) -> None:
    """Make the stored tags and companies of the deals `ids` exactly their copies'."""
    written = set(ids)
    # One copy per id (the last), as the upsert keeps: a duplicate would break the key.
    wanted = list({r.id: r for r in records if r.id in written}.values())
    if not wanted:
        return
    for chunk in power_of_two_chunks(sorted(r.id for r in wanted)):
        await conn.execute(delete(deal_tags).where(deal_tags.c.deal_id.in_(chunk)))
        await conn.execute(delete(deal_companies).where(deal_companies.c.deal_id.in_(chunk)))
    tags = [
        {"deal_id": r.id, "tag_id": tag_id, "name": name}
        for r in wanted
        for tag_id, name in lead_tags(r.raw).items()
    ]
    if tags:
        await conn.execute(insert(deal_tags), tags)
    links = [
        {"deal_id": r.id, "company_id": cid} for r in wanted for cid in lead_company_ids(r.raw)
    ]
    if links:
        await conn.execute(insert(deal_companies), links)
