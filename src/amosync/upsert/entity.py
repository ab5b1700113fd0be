"""The two statements every entity table shares: newer-wins upsert and deletion flagging.

Both are built once per (database, table) and executed with a list of parameter sets, never
with the rows inlined (`.values(rows)`): a multi-row statement of a new size was compiled
again by SQLAlchemy and prepared again by the database on every worker batch, which cost
more CPU than the rows themselves. With a fixed statement SQLAlchemy reuses its compiled
form and, where RETURNING is needed, batches the rows itself ("insertmanyvalues").

Rows go in power-of-two chunks (at most `MAX_CHUNK`), so the SQL text the database sees is
one of a few fixed shapes: SQLite and PostgreSQL keep prepared statements per text, and a
text per batch size (1…250) would fill those caches with near-duplicates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.dialect import dialect_insert
from amosync.upsert.dialect import newer_wins

MAX_CHUNK = 128


async def upsert_newer(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
) -> set[int]:
    """Insert or update rows by `id`; returns the ids written (not refused as older).

    Every row must have the same keys (all of the table's columns).
    """
    stmt = _upsert_statement(conn.dialect.name, table)
    written: set[int] = set()
    for chunk in power_of_two_chunks(rows):
        written.update((await conn.execute(stmt, chunk)).scalars())
    return written


async def mark_deleted(
    conn: AsyncConnection, table: Table, ids: Iterable[int], now: datetime
) -> None:
    """amoCRM no longer returns these entities: keep the rows, flag them deleted.

    An entity we never stored gets a stub row, so readers can tell "deleted" from "unknown".
    """
    rows = [_stub(table, i, now) for i in sorted(set(ids))]
    stmt = _mark_deleted_statement(conn.dialect.name, table)
    for chunk in power_of_two_chunks(rows):
        await conn.execute(stmt, chunk)


def power_of_two_chunks(rows: Sequence[Any], largest: int = MAX_CHUNK) -> Iterator[list[Any]]:
    """`rows` in consecutive chunks whose sizes are powers of two, largest first (250 → 128,
    64, 32, 16, 8, 2): few executions, and only log2(largest) + 1 distinct sizes ever."""
    start, left = 0, len(rows)
    while left:
        size = min(largest, 1 << (left.bit_length() - 1))
        yield list(rows[start : start + size])
        start, left = start + size, left - size


@cache
def _upsert_statement(dialect: str, table: Table) -> Any:
    stmt = dialect_insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"},
        where=newer_wins(table, stmt.excluded),
    ).returning(table.c.id)


@cache
def _mark_deleted_statement(dialect: str, table: Table) -> Any:
    # Taken from the stub row (is_deleted true, synced_at now), so the statement has no
    # literal values of its own and one compiled form serves every call.
    stmt = dialect_insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={"is_deleted": stmt.excluded.is_deleted, "synced_at": stmt.excluded.synced_at},
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
