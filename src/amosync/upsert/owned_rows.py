"""Rows owned by an entity (its field values, a deal's tags and companies), replaced only
where they changed.

Most edits of a deal in amoCRM change its stage, price or responsible user, not its
custom fields or tags: rewriting every owned row on every stored copy cost more than the
deal's own upsert (issue #21's scale benchmark). One SELECT of the owned rows of the batch
tells which entities' rows differ; only those are deleted and inserted again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Column, Table, TextClause, delete, insert, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


async def replace_changed(
    conn: AsyncConnection,
    table: Table,
    owner: str,
    wanted: Mapping[int, Sequence[dict[str, Any]]],
    scope: Mapping[str, Any] | None = None,
) -> None:
    """Make the rows of `table` whose column `owner` is one of `wanted`'s keys (and whose
    `scope` columns have those values) exactly `wanted[owner id]`.

    Rows are compared as sets of every column but the owner and scope ones; each row in
    `wanted` carries every column of the table.
    """
    if not wanted:
        return
    scope = scope or {}
    fixed = [table.c[name] == value for name, value in scope.items()]
    columns = [c for c in table.columns if c.name != owner and c.name not in scope]
    owner_column = table.c[owner]
    ids = sorted(wanted)
    stored: dict[int, set[tuple[Any, ...]]] = {}
    query = select(owner_column, *columns).where(owner_column.in_(ids), *fixed)
    for row in await conn.execute(query):
        stored.setdefault(row[0], set()).add(tuple(row[1:]))
    changed = [
        entity_id
        for entity_id in ids
        if stored.get(entity_id, set()) != {_values(r, columns) for r in wanted[entity_id]}
    ]
    if not changed:
        return
    stale = [i for i in changed if i in stored]
    if stale:
        await conn.execute(delete(table).where(owner_column.in_(stale), *fixed))
    rows = [row for entity_id in changed for row in wanted[entity_id]]
    await bulk_insert(conn, table, rows)


def _values(row: Mapping[str, Any], columns: Sequence[Column[Any]]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in columns)


async def bulk_insert(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (each with every column) in one statement.

    On PostgreSQL an executemany sends one INSERT per row (psycopg's pipeline): a batch of
    250 deals with 9 values each took ~0.8 ms per deal; one INSERT … SELECT FROM unnest of
    one array per column takes ~0.5 ms here. SQLite's executemany is a loop inside the
    driver, without round trips, and stays.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        await conn.execute(insert(table), list(rows))
        return
    params = {f"a_{c.name}": [row[c.name] for row in rows] for c in table.columns}
    await conn.execute(_unnest_insert(table, conn.dialect), params)


@cache
def _unnest_insert(table: Table, dialect: Dialect) -> TextClause:
    names = ", ".join(c.name for c in table.columns)
    arrays = ", ".join(
        f"CAST(:a_{c.name} AS {c.type.compile(dialect=dialect)}[])" for c in table.columns
    )
    return text(f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays})")  # noqa: S608 - names from tables.py
