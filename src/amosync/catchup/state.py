"""Named JSON values in `amosync_state`: catch-up watermarks, backfill cursors, run reports.

Every write happens inside the caller's transaction, so a page of upserts and the cursor
that says "this page is done" commit together: a crash resumes exactly after the last
committed page. The one-run-at-a-time leases live in the same table (db/lease.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import sync_state


async def read_state(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    value = (
        await conn.execute(select(sync_state.c.value).where(sync_state.c.key == key))
    ).scalar_one_or_none()
    return value if isinstance(value, dict) else None


async def write_state(conn: AsyncConnection, key: str, value: dict[str, Any]) -> None:
    stmt = upsert_insert(conn, sync_state).values(
        key=key, value=value, updated_at=datetime.now(UTC)
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[sync_state.c.key],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        )
    )


async def load(db: Database, key: str) -> dict[str, Any] | None:
    async with db.read() as conn:
        return await read_state(conn, key)
