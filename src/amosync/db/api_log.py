"""Record every amoCRM call in `amocrm_api_requests`, so any process can report the spend."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from amosync.db.database import Database
from amosync.db.tables import api_requests

log = logging.getLogger(__name__)

KEEP = timedelta(days=2)


class DbCallRecorder:
    """`CallRecorder` writing one row per call. Losing a row only skews a counter, so a
    database error is logged and swallowed: it must never fail the API call itself."""

    def __init__(self, db: Database, purpose: str) -> None:
        self._db = db
        self._purpose = purpose
        self._calls = 0
        self._prune_due = False

    @property
    def db(self) -> Database:
        return self._db

    async def record(self, method: str, path: str, status: int, duration_ms: int) -> None:
        try:
            await self._db.write_sync(
                partial(
                    self.write, method=method, path=path, status=status, duration_ms=duration_ms
                ),
            )
        except SQLAlchemyError as exc:
            _log_not_recorded(exc)
        await self.prune_if_due()

    def write(
        self, conn: Connection, *, method: str, path: str, status: int, duration_ms: int
    ) -> None:
        """The row, in the caller's transaction (raises, unlike `record`); call
        `prune_if_due` after that transaction."""
        conn.execute(
            _INSERT,
            {
                "at": datetime.now(UTC),
                "method": method,
                "path": path[:255],
                "status": status,
                "duration_ms": duration_ms,
                "purpose": self._purpose,
            },
        )
        self._calls += 1
        self._prune_due = self._prune_due or self._calls % 1000 == 0

    async def prune_if_due(self) -> None:
        """Now and then, forget old rows: in a transaction of its own, so that no caller's
        (the rate limiter's, holding its row) waits for the delete."""
        if not self._prune_due:
            return
        self._prune_due = False
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    delete(api_requests).where(api_requests.c.at < datetime.now(UTC) - KEEP)
                )
        except SQLAlchemyError as exc:
            _log_not_recorded(exc)


# Built once: the values come as parameters, so SQLAlchemy compiles it once per engine.
_INSERT = insert(api_requests)


def _log_not_recorded(exc: Exception) -> None:
    log.warning(
        "api_call_not_recorded",
        extra={"event": "api_call_not_recorded", "error": str(exc)[:200]},
    )


async def calls_by_status(db: Database, since: datetime) -> dict[int, int]:
    """Calls made since `since`, counted by HTTP status (0 = no response)."""
    counts = await _counts_by(db, api_requests.c.status, since)
    return {int(status): n for status, n in counts.items()}


async def calls_by_purpose(db: Database, since: datetime) -> dict[str, int]:
    """Calls made since `since`, counted by purpose (webhook, catchup, backfill, oauth, …)."""
    counts = await _counts_by(db, api_requests.c.purpose, since)
    return {str(purpose): n for purpose, n in counts.items()}


async def _counts_by(db: Database, column: ColumnElement[Any], since: datetime) -> dict[Any, int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(column, func.count()).where(api_requests.c.at >= since).group_by(column)
        )
        return {key: int(n) for key, n in rows.all()}


async def count_calls(db: Database, since: datetime, purposes: Collection[str]) -> int:
    """Calls of these purposes made since `since`, by every process."""
    async with db.read() as conn:
        n = await conn.scalar(
            select(func.count())
            .select_from(api_requests)
            .where(api_requests.c.at >= since, api_requests.c.purpose.in_(list(purposes)))
        )
    return int(n or 0)


async def nth_call_at(
    db: Database, since: datetime, purposes: Collection[str], n: int
) -> datetime | None:
    """When the `n`-th (from 0, oldest first) call of these purposes since `since` was made."""
    async with db.read() as conn:
        at: datetime | None = await conn.scalar(
            select(api_requests.c.at)
            .where(api_requests.c.at >= since, api_requests.c.purpose.in_(list(purposes)))
            .order_by(api_requests.c.at)
            .offset(n)
            .limit(1)
        )
    return at
