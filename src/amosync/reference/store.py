"""Writing the reference data: rename in place, keep what vanished (flagged `is_deleted`).

Each table is replaced by amoCRM's list as a whole: listed rows are inserted or updated
(`synced_at` moves only when something changed, as on the entity tables), stored rows the
list no longer has are flagged `is_deleted` and kept, so old deals still name their stage,
user or field. A row that comes back is unflagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, not_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.dialect import dialect_insert
from amosync.db.tables import custom_fields, loss_reasons, pipelines, statuses, users
from amosync.reference.fetch import Fetched
from amosync.reference.rows import Row
from amosync.upsert.entity import power_of_two_chunks
from amosync.upsert.newer_wins import changed


async def replace_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Row],
    now: datetime,
    *,
    scope: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Make `table` (or the part of it where `scope`'s columns equal its values) hold `rows`;
    returns how many rows were written and how many flagged vanished."""
    keys = [c.name for c in table.primary_key.columns]
    stamped = [{**row, "is_deleted": False, "synced_at": now} for row in rows]
    written = 0
    if stamped:
        stmt = dialect_insert(conn.dialect.name, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in keys],
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
            where=changed(table, stmt.excluded),
        ).returning(table.c[keys[0]])
        for chunk in power_of_two_chunks(stamped):
            written += len((await conn.execute(stmt, chunk)).all())
    # What vanished is worked out here rather than with NOT IN: a few thousand stages at
    # most, and no tuple-IN list of that size in one statement.
    scoped = [table.c[name] == value for name, value in (scope or {}).items()]
    key_columns = [table.c[k] for k in keys]
    stored = await conn.execute(select(*key_columns).where(not_(table.c.is_deleted), *scoped))
    listed = {tuple(row[k] for k in keys) for row in rows}
    gone = [tuple(r) for r in stored if tuple(r) not in listed]
    for key in gone:
        await conn.execute(
            update(table)
            .where(*(c == v for c, v in zip(key_columns, key, strict=True)))
            .values(is_deleted=True, synced_at=now)
        )
    return {"written": written, "vanished": len(gone)}


async def store_reference(conn: AsyncConnection, fetched: Fetched, now: datetime) -> dict[str, Any]:
    """Write everything fetched; a list amoCRM did not give (users 403, loss reasons 404)
    leaves its table as it was. Returns per-table counts."""
    counts: dict[str, Any] = {
        "pipelines": await replace_rows(conn, pipelines, fetched.pipelines, now),
        "statuses": await replace_rows(conn, statuses, fetched.statuses, now),
    }
    if fetched.users is not None:
        counts["users"] = await replace_rows(conn, users, fetched.users, now)
    for entity, rows in fetched.fields.items():
        counts[f"fields.{entity}"] = await replace_rows(
            conn, custom_fields, rows, now, scope={"entity_type": entity}
        )
    if fetched.loss_reasons is not None:
        counts["loss_reasons"] = await replace_rows(conn, loss_reasons, fetched.loss_reasons, now)
    return counts
