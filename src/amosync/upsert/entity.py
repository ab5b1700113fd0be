"""The two statements every entity table shares: newer-wins upsert and deletion flagging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.upsert.dialect import newer_wins, upsert_insert


async def upsert_newer(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> set[int]:
    """Insert or update rows by `id`; returns the ids written (not refused as older)."""
    if not rows:
        return set()
    stmt = upsert_insert(conn, table).values(list(rows))
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"},
        where=newer_wins(table, stmt.excluded),
    ).returning(table.c.id)
    return set((await conn.execute(stmt)).scalars())


async def mark_deleted(
    conn: AsyncConnection, table: Table, ids: Iterable[int], now: datetime
) -> None:
    """amoCRM no longer returns these entities: keep the rows, flag them deleted.

    An entity we never stored gets a stub row, so readers can tell "deleted" from "unknown".
    """
    rows = [_stub(table, i, now) for i in sorted(set(ids))]
    if not rows:
        return
    stmt = upsert_insert(conn, table).values(rows)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={"is_deleted": True, "synced_at": now}
        )
    )


def _stub(table: Table, entity_id: int, now: datetime) -> dict[str, Any]:
    """A row with only what is known; the other NOT NULL columns (JSON lists) stay empty."""
    row: dict[str, Any] = {
        "id": entity_id,
        "is_deleted": True,
        "raw": {"id": entity_id, "is_deleted": True},
        "synced_at": now,
    }
    for column in table.columns:
        if column.name not in row and not column.nullable and column.server_default is None:
            row[column.name] = []
    return row
