"""Statements on `amocrm_contacts` and `amocrm_companies` (one shape, two tables)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.records import ContactRecord
from amosync.upsert.dialect import newer_wins, upsert_insert


async def upsert_people(
    conn: AsyncConnection, table: Table, records: Sequence[ContactRecord], now: datetime
) -> set[int]:
    """Insert or update contacts (or companies); returns the ids whose row was written."""
    if not records:
        return set()
    rows = [{**asdict(r), "synced_at": now} for r in records]
    stmt = upsert_insert(conn, table).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"},
        where=newer_wins(table, stmt.excluded),
    ).returning(table.c.id)
    return set((await conn.execute(stmt)).scalars())


async def mark_people_deleted(
    conn: AsyncConnection, table: Table, ids: Iterable[int], now: datetime
) -> None:
    """Flag contacts/companies amoCRM no longer returns; stub rows for ones never stored."""
    rows = [
        {
            "id": i,
            "is_deleted": True,
            "phones": [],
            "emails": [],
            "custom_fields": [],
            "raw": {"id": i, "is_deleted": True},
            "synced_at": now,
        }
        for i in sorted(set(ids))
    ]
    if not rows:
        return
    stmt = upsert_insert(conn, table).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={"is_deleted": True, "synced_at": now}
        )
    )


async def missing_ids(conn: AsyncConnection, table: Table, ids: Iterable[int]) -> set[int]:
    """Which of these ids have no row yet."""
    wanted = set(ids)
    if not wanted:
        return set()
    present = (
        await conn.execute(select(table.c.id).where(table.c.id.in_(sorted(wanted))))
    ).scalars()
    return wanted - set(present)
