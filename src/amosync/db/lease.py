"""A lease row in `amosync_state`: one holder at a time across every process on the database.

Used for "one catch-up run at a time" (catchup/reconcile.py, catchup/backfill.py) and for
"exactly one OAuth refresh at a time" (amocrm/token_store.py). The row's value is

    {"holder": <id> | null, "until": <epoch seconds>,
     "last_holder": <id>, "finished_at": <epoch seconds>, "finished_by": <id>}

The last three are history, written on release: `finished_*` only when the holder says its
run completed, so `acquire(min_gap=…)` can skip a run that another process finished moments
ago. A row in any other shape (older versions wrote "owner" instead of "holder") reads as
free: leases are transient, so nothing is migrated.

Every read-modify-write locks the row (`FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on
SQLite, db/engine.py) and lasts one short transaction; nothing stays open while the holder
works. A holder that dies loses the lease when `until` passes. Holders keep leases short
(tens of seconds, so a crash blocks the next run only that long) and renew them in the
background while they work (`kept()`), however long one step takes (a page held up behind
429s). A renewal that fails is tried again at the next tick; if the database stays away
longer than the lease, another process may take it over and do the same work twice, which
is harmless for every holder here.
Expiry uses each process's clock: hosts a few seconds apart only shorten or lengthen a lapsed
holder's grace, so callers that must never act twice also check their own write (the OAuth
refresh does a compare-and-set on the token row).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import sync_state
from amosync.l10n.catalog import N_

log = logging.getLogger(__name__)

# Seconds a stopping keeper gets to finish the renewal it is in before it is cancelled.
_KEEPER_STOP_GRACE = 5.0


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease now, and until when (epoch seconds)."""

    holder: str
    until: float


@dataclass(frozen=True)
class LeaseRefused:
    """Why `acquire` did not take the lease, and until when (epoch seconds) that holds.

    `recently_finished`: nobody holds it, but `holder` finished a run less than `min_gap`
    seconds ago.
    """

    holder: str
    until: float
    seconds_left: float
    recently_finished: bool

    @property
    def wait_hint(self) -> str:
        """How long a refused caller waits at most, for a message: when the holder has
        died, its lease lapses by then."""
        return N_("within {n} s").format(n=max(1, math.ceil(self.seconds_left)))


class Lease:
    """The lease `key`, as seen by one would-be holder (`holder` names it in the row)."""

    def __init__(self, db: Database, key: str, holder: str, seconds: float) -> None:
        self._db = db
        self.key = key
        self.holder = holder
        self._seconds = seconds

    async def acquire(self, *, min_gap: float = 0.0) -> LeaseRefused | None:
        """Take the lease if it is free, expired or already ours: None, else who has it.

        With `min_gap` > 0 a free lease is refused too while the last completed run
        (`release(finished=True)`) ended less than `min_gap` seconds ago.
        """
        async with self._db.write() as conn:
            await self._ensure_row(conn)
            value = await self._locked(conn)
            now = time.time()
            current = _holder(value)
            if current is not None and current.holder != self.holder and current.until > now:
                return LeaseRefused(current.holder, current.until, current.until - now, False)
            finished = _number(value.get("finished_at"))
            if min_gap > 0 and now - finished < min_gap:
                by = str(value.get("finished_by") or "?")
                return LeaseRefused(by, finished + min_gap, finished + min_gap - now, True)
            await self._write(conn, value, holder=self.holder, until=now + self._seconds)
        return None

    async def renew(self) -> bool:
        """Push the expiry `seconds` ahead; False (and nothing written) if no longer ours."""
        async with self._db.write() as conn:
            value = await self._locked(conn)
            if value.get("holder") != self.holder:
                return False
            await self._write(conn, value, holder=self.holder, until=time.time() + self._seconds)
        return True

    @contextlib.asynccontextmanager
    async def kept(self, *, every: float | None = None) -> AsyncIterator[None]:
        """Renew the lease every `every` seconds (default a quarter of its length) in the
        background while the body runs, so it lapses only when this process stops."""
        interval = every if every is not None else self._seconds / 4
        stop = asyncio.Event()
        keeper = asyncio.create_task(self._keep(interval, stop), name=f"lease-{self.key}")
        try:
            yield
        finally:
            stop.set()
            # Let it end by itself: a task cancelled mid-query makes SQLAlchemy throw its
            # connection away, which with aiosqlite can outlive the event loop.
            done, _ = await asyncio.wait([keeper], timeout=_KEEPER_STOP_GRACE)
            if not done:
                keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)

    async def _keep(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                if not await self.renew():
                    log.warning(
                        "lease_lost",
                        extra={"event": "lease_lost", "lease": self.key, "holder": self.holder},
                    )
                    return
            except SQLAlchemyError as exc:
                # Tried again at the next tick; the lease lasts several ticks.
                log.warning(
                    "lease_renew_failed",
                    extra={
                        "event": "lease_renew_failed",
                        "lease": self.key,
                        "error": str(exc)[:300],
                    },
                )

    async def release(self, *, finished: bool = False) -> None:
        """Give the lease back in a transaction of its own (see `release_in`)."""
        async with self._db.write() as conn:
            await self.release_in(conn, finished=finished)

    async def release_in(self, conn: AsyncConnection, *, finished: bool = False) -> None:
        """Give the lease back inside the caller's open transaction, so it is released only if
        that transaction commits. No-op when another holder has it by now. `finished` records
        the end of a complete run (for `acquire(min_gap=…)`)."""
        value = await self._locked(conn)
        if value.get("holder") != self.holder:
            return
        history: dict[str, Any] = {"last_holder": self.holder}
        if finished:
            history.update(finished_at=time.time(), finished_by=self.holder)
        await self._write(conn, value, holder=None, until=0.0, **history)

    async def current(self, conn: AsyncConnection | None = None) -> LeaseHolder | None:
        """The live holder (None when free or expired), read without locking: for waiters.

        Pass `conn` to read in the same snapshot as other rows the waiter looks at.
        """
        if conn is None:
            async with self._db.read() as own:
                return await self.current(own)
        query = select(sync_state.c.value).where(sync_state.c.key == self.key)
        value = (await conn.execute(query)).scalar_one_or_none()
        current = _holder(value if isinstance(value, dict) else {})
        return current if current is not None and current.until > time.time() else None

    async def _ensure_row(self, conn: AsyncConnection) -> None:
        stmt = upsert_insert(conn, sync_state).values(
            key=self.key, value={}, updated_at=datetime.now(UTC)
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=[sync_state.c.key]))

    async def _locked(self, conn: AsyncConnection) -> dict[str, Any]:
        query = select(sync_state.c.value).where(sync_state.c.key == self.key)
        value = (await conn.execute(query.with_for_update())).scalar_one_or_none()
        return dict(value) if isinstance(value, dict) else {}

    async def _write(self, conn: AsyncConnection, old: dict[str, Any], **new: Any) -> None:
        # Only our own fields are kept: a row in an older shape loses its stray keys.
        kept = {k: old[k] for k in ("last_holder", "finished_at", "finished_by") if k in old}
        await conn.execute(
            update(sync_state)
            .where(sync_state.c.key == self.key)
            .values(value={**kept, **new}, updated_at=datetime.now(UTC))
        )


def _holder(value: dict[str, Any]) -> LeaseHolder | None:
    holder = value.get("holder")
    if not isinstance(holder, str) or not holder:
        return None
    return LeaseHolder(holder, _number(value.get("until")))


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
