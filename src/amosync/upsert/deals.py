"""Statements on `amocrm_deals` and `amocrm_deal_contacts`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.records import DealContactLink, DealRecord
from amosync.db.tables import deal_contacts, deals
from amosync.upsert.dialect import newer_wins, upsert_insert

_UPDATABLE = [c.name for c in deals.columns if c.name != "id"]


async def upsert_deals(
    conn: AsyncConnection, records: Sequence[DealRecord], now: datetime
) -> set[int]:
    """Insert or update deals; returns the ids whose row was written (not refused as older)."""
    if not records:
        return set()
    rows = [{**asdict(r), "synced_at": now} for r in records]
    stmt = upsert_insert(conn, deals).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[deals.c.id],
        set_={name: stmt.excluded[name] for name in _UPDATABLE},
        where=newer_wins(deals, stmt.excluded),
    ).returning(deals.c.id)
    return set((await conn.execute(stmt)).scalars())


async def mark_deals_deleted(conn: AsyncConnection, ids: Iterable[int], now: datetime) -> None:
    """amoCRM no longer returns these deals: keep the rows, flag them deleted.

    A deal we never stored gets a stub row, so readers can tell "deleted" from "unknown".
    """
    rows = [
        {
            "id": i,
            "is_deleted": True,
            "custom_fields": [],
            "raw": {"id": i, "is_deleted": True},
            "synced_at": now,
        }
        for i in sorted(set(ids))
    ]
    if not rows:
        return
    stmt = upsert_insert(conn, deals).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[deals.c.id],
            set_={"is_deleted": True, "synced_at": now},
        )
    )


async def replace_deal_links(
    conn: AsyncConnection, deal_ids: Iterable[int], links: Sequence[DealContactLink]
) -> None:
    """Make the stored links of these deals exactly `links` (amoCRM returns the full list)."""
    ids = sorted(set(deal_ids))
    if not ids:
        return
    await conn.execute(delete(deal_contacts).where(deal_contacts.c.deal_id.in_(ids)))
    wanted = {(link.deal_id, link.contact_id): link for link in links if link.deal_id in set(ids)}
    if wanted:
        await conn.execute(insert(deal_contacts), [asdict(link) for link in wanted.values()])
