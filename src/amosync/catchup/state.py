"""Named JSON values in `amosync_state`: catch-up watermarks, backfill cursors, run leases.

Every write happens inside the caller's transaction, so a page of upserts and the cursor
that says "this page is done" commit together: a crash resumes exactly after the last
committed page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amosync.db.tables import sync_state
from amosync.upsert.dialect import upsert_insert


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


async def load(engine: AsyncEngine, key: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        return await read_state(conn, key)


@dataclass(frozen=True)
class LeaseRefused:
    """Another process holds the lease (or finished a run moments ago)."""

    owner: str
    seconds_left: float
    recently_finished: bool


class Lease:
    """One run at a time across every process on the database.

    Several workers on one PostgreSQL database each run the catch-up job; the lease makes
    them take turns, and `min_gap` makes a worker skip its turn when another one finished a
    run moments ago, so N workers cost what one does. The row is locked while it is read
    and written (`FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite). A holder that
    dies loses the lease when it expires; holders renew it between pages.
    """

    def __init__(self, engine: AsyncEngine, key: str, owner: str, seconds: float) -> None:
        self._engine = engine
        self._key = key
        self._owner = owner
        self._seconds = seconds

    async def acquire(self, min_gap: float = 0.0) -> LeaseRefused | None:
        """Take the lease; None when taken, else who has it."""
        async with self._engine.begin() as conn:
            await self._ensure_row(conn)
            value = await self._locked(conn)
            now = time.time()
            holder, until = value.get("owner"), float(value.get("until") or 0.0)
            if holder not in (None, self._owner) and until > now:
                return LeaseRefused(str(holder), until - now, recently_finished=False)
            finished = float(value.get("finished_at") or 0.0)
            if min_gap > 0 and now - finished < min_gap:
                return LeaseRefused(str(value.get("by") or "?"), min_gap - (now - finished), True)
            await write_state(
                conn, self._key, {**value, "owner": self._owner, "until": now + self._seconds}
            )
        return None

    async def renew(self) -> None:
        async with self._engine.begin() as conn:
            value = await self._locked(conn)
            if value.get("owner") == self._owner:
                value["until"] = time.time() + self._seconds
                await write_state(conn, self._key, value)

    async def release(self, *, finished: bool) -> None:
        """Give the lease back; `finished` records the end of a complete run (for `min_gap`)."""
        async with self._engine.begin() as conn:
            value = await self._locked(conn)
            if value.get("owner") != self._owner:
                return
            value.update(owner=None, until=0.0)
            if finished:
                value.update(finished_at=time.time(), by=self._owner)
            await write_state(conn, self._key, value)

    async def _ensure_row(self, conn: AsyncConnection) -> None:
        stmt = upsert_insert(conn, sync_state).values(
            key=self._key, value={}, updated_at=datetime.now(UTC)
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=[sync_state.c.key]))

    async def _locked(self, conn: AsyncConnection) -> dict[str, Any]:
        query = select(sync_state.c.value).where(sync_state.c.key == self._key)
        value = (await conn.execute(query.with_for_update())).scalar_one_or_none()
        return dict(value) if isinstance(value, dict) else {}
