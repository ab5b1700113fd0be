"""The database checks behind `/health` and `/health/live`, bounded in time and cost.

A `SELECT 1` answers from a full disk, a read-only database and (on SQLite) a deleted file,
so `/health` makes a real write: one row of `amosync_state` (`health.probe`), at most once
every `WRITE_CACHE_SECONDS` per process, however often monitoring asks. It also fails while
the webhook writer's last commit failed (StorageWatch): a small update can still fit where a
webhook's insert no longer does. Every database call here runs as a task waited on for at
most `TIMEOUT` seconds; one still running is not cancelled (cancelling a query mid-way makes
SQLAlchemy drop its connection) and is reported as hanging until it ends.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.catchup.state import write_state
from amosync.db.database import Database
from amosync.db.file_guard import StorageWatch
from amosync.health.model import FAIL, OK, Check
from amosync.inbox.store import last_webhook_at

WRITE_CACHE_SECONDS = 5.0
TIMEOUT = 5.0
PROBE_KEY = "health.probe"
# A webhook row committed this long after its received_at is still found by the next look.
LATE_COMMIT = timedelta(seconds=60)

T = TypeVar("T")


class HealthProbe:
    """One per process (the app keeps it): the cached write and the storage watch."""

    def __init__(self, watch: StorageWatch | None = None) -> None:
        self.watch = watch or StorageWatch()
        self._write: asyncio.Task[None] | None = None
        self._write_started = 0.0
        self._write_result: Check | None = None
        self._write_at = 0.0
        self._select: asyncio.Task[None] | None = None
        self._last_webhook: datetime | None = None
        self._webhook_looked_at: datetime | None = None

    async def live(self, db: Database) -> Check:
        """The process answers and so does the database (a read: for liveness)."""
        refused = self._refusal()
        if refused is not None:
            return refused
        if self._select is None or self._select.done():
            self._select = asyncio.create_task(_select_one(db), name="health-select")
        answer = await _bounded(self._select, "answers", "a query")
        if answer.ok or self.watch.look_again() is None:
            return answer
        return self._refusal() or answer

    async def database(self, db: Database) -> Check:
        """Writable: a real write, cached `WRITE_CACHE_SECONDS`; the webhook commits too."""
        refused = self._refusal()
        if refused is not None:
            return refused
        watch = self.watch
        if watch.failing_since is not None and watch.last_commit is not None:
            return Check(
                FAIL,
                f"webhook commits fail: {watch.last_commit.error} (webhooks get 503; "
                "free disk space or fix the database, amoCRM delivers again)",
                watch.failing_since,
            )
        fresh = time.monotonic() - self._write_at < WRITE_CACHE_SECONDS
        if self._write_result is not None and fresh:
            return self._write_result
        if self._write is None or self._write.done():
            self._write = asyncio.create_task(_write_probe(db), name="health-write")
            self._write_started = time.monotonic()
        result = await _bounded(self._write, "writable", "a test write")
        if self._write.done():
            self._write_result, self._write_at = result, time.monotonic()
        return result

    async def last_webhook(self, conn: AsyncConnection) -> datetime | None:
        """The newest webhook from amoCRM. After the first answer only rows received since
        the previous look (less a margin for late commits) are read: after a backfill the
        newest rows are the worker's own, and walking past all of them on every poll cost
        ~28 ms on SQLite with 50,000 of them."""
        looked_at = datetime.now(UTC)
        floor = None if self._webhook_looked_at is None else self._webhook_looked_at - LATE_COMMIT
        found = await last_webhook_at(conn, after=floor)
        newer = found is not None and (self._last_webhook is None or found > self._last_webhook)
        if floor is None or newer:
            self._last_webhook = found
        self._webhook_looked_at = looked_at
        return self._last_webhook

    def _refusal(self) -> Check | None:
        if self.watch.refusal is None:
            return None
        return Check(FAIL, self.watch.refusal, self.watch.refused_since)


async def _select_one(db: Database) -> None:
    async with db.read() as conn:
        await conn.execute(text("SELECT 1"))


async def _write_probe(db: Database) -> None:
    async with db.write() as conn:
        note = {"at": datetime.now(UTC).isoformat(), "pid": os.getpid()}
        await write_state(conn, PROBE_KEY, note)


async def _bounded(task: asyncio.Task[None], good: str, what: str) -> Check:
    started = datetime.now(UTC)
    done, _ = await asyncio.wait({task}, timeout=TIMEOUT)
    if not done:
        return Check(FAIL, f"{what} has not finished within {TIMEOUT:.0f} s", started)
    exc = task.exception()
    if exc is not None:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return Check(FAIL, f"{what} failed: {first}", started)
    return Check(OK, good)


async def bounded(awaitable: Awaitable[T]) -> T:
    """Other checks' queries: at most TIMEOUT seconds (raises TimeoutError)."""
    return await asyncio.wait_for(awaitable, TIMEOUT)
