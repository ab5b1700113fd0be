"""The two statements every entity table shares: newer-wins upsert and deletion flagging.

Deletion flagging is rare (proven deletions only) and takes a plain UPDATE; the rest of
this note is about the upsert, which runs for every batch.

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

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Table, not_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.dialect import dialect_insert
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.upsert.newer_wins import FETCHED_AT, FUTURE_LIMIT, newer_wins

MAX_CHUNK = 128


async def upsert_newer(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    fetched_at: datetime | None = None,
    future_limit: datetime | None = None,
) -> set[int]:
    """Insert or update rows by `id`; returns the ids written (not refused as older or
    unchanged). `fetched_at`: when the copies were requested (default: now); `future_limit`:
    the database clock plus the allowed skew (default: this host's clock plus the default
    skew). upsert/newer_wins.py says what both decide.

    Every row must have the same keys (all of the table's columns). The caller checked that
    no row is from beyond `future_limit` (worker/apply.py).
    """
    stmt = _upsert_statement(conn.dialect.name, table)
    written: set[int] = set()
    now = datetime.now(UTC)
    fetched = fetched_at or now
    limit = future_limit or now + timedelta(seconds=DEFAULT_MAX_CLOCK_SKEW)
    for row in rows:
        row[FETCHED_AT], row[FUTURE_LIMIT] = fetched, limit
    for chunk in power_of_two_chunks(rows):
        written.update((await conn.execute(stmt, chunk)).scalars())
    return written


async def mark_deleted(
    conn: AsyncConnection, table: Table, ids: Iterable[int], now: datetime
) -> int:
    """Flag stored rows deleted (rows stay, for readers); returns how many changed.

    Only proven deletions come here (worker/deletions.py, catchup/deletions.py). An id with
    no row gets none: a deletion of something never stored is not a deal to count or list,
    and the inbox keeps the event. A row already flagged keeps its `synced_at`, so the
    change feed does not send it again.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return 0
    flagged = 0
    for chunk in power_of_two_chunks(wanted):
        stmt = (
            update(table)
            .where(table.c.id.in_(chunk), not_(table.c.is_deleted))
            .values(is_deleted=True, synced_at=now)
        )
        flagged += (await conn.execute(stmt)).rowcount
    return flagged


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
