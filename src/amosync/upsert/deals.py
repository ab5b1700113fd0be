"""Statements on `amocrm_deals` and `amocrm_deal_contacts`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.records import DealContactLink, DealRecord
from amosync.db.tables import deal_contacts, deals
from amosync.upsert.deal_links import replace_deal_embedded
from amosync.upsert.entity import mark_deleted, upsert_newer
from amosync.upsert.field_values import replace_field_values
from amosync.upsert.rows import record_rows


async def upsert_deals(
    conn: AsyncConnection,
    records: Sequence[DealRecord],
    now: datetime,
    *,
    fetched_at: datetime | None = None,
    future_limit: datetime | None = None,
) -> set[int]:
    """Insert or update deals; returns the ids whose row was written (not refused as older
    or unchanged)."""
    rows = record_rows(records, now)
    written = await upsert_newer(
        conn, deals, rows, fetched_at=fetched_at, future_limit=future_limit
    )
    # What hangs off a deal follows the copy just stored, never one refused as older.
    await replace_field_values(conn, "leads", records, written)
    await replace_deal_embedded(conn, records, written)
    return written


async def mark_deals_deleted(conn: AsyncConnection, ids: Iterable[int], now: datetime) -> int:
    """Flag stored deals proven deleted; returns how many changed (no row for unknown ids)."""
    return await mark_deleted(conn, deals, ids, now)


async def replace_deal_links(
    conn: AsyncConnection, deal_ids: Iterable[int], links: Sequence[DealContactLink]
) -> None:
    """Make the stored links of these deals exactly `links` (amoCRM returns the full list)."""
    ids = set(deal_ids)
    if not ids:
        return
    await conn.execute(delete(deal_contacts).where(deal_contacts.c.deal_id.in_(sorted(ids))))
    wanted = {(link.deal_id, link.contact_id): link for link in links if link.deal_id in ids}
    if wanted:
        rows = [
            {"deal_id": link.deal_id, "contact_id": link.contact_id, "is_main": link.is_main}
            for link in wanted.values()
        ]
        await conn.execute(insert(deal_contacts), rows)
