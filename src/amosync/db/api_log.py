"""Record every amoCRM call in `amocrm_api_requests`, so any process can report the spend."""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.db.tables import api_requests

log = logging.getLogger(__name__)

KEEP = timedelta(days=2)


class DbCallRecorder:
    """`CallRecorder` writing one row per call. Losing a row only skews a counter, so a
    database error is logged and swallowed: it must never fail the API call itself."""

    def __init__(self, engine: AsyncEngine, purpose: str) -> None:
        self._engine = engine
        self._purpose = purpose
        self._calls = 0

    async def record(self, method: str, path: str, status: int, duration_ms: int) -> None:
        now = datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(api_requests).values(
                        at=now,
                        method=method,
                        path=path[:255],
                        status=status,
                        duration_ms=duration_ms,
                        purpose=self._purpose,
                    )
                )
                self._calls += 1
                if self._calls % 1000 == 0:  # prune now and then, off the hot path
                    await conn.execute(delete(api_requests).where(api_requests.c.at < now - KEEP))
        except SQLAlchemyError as exc:
            log.warning(
                "api_call_not_recorded",
                extra={"event": "api_call_not_recorded", "error": str(exc)[:200]},
            )


async def calls_by_status(engine: AsyncEngine, since: datetime) -> dict[int, int]:
    """Calls made since `since`, counted by HTTP status (0 = no response)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(api_requests.c.status, func.count())
            .where(api_requests.c.at >= since)
            .group_by(api_requests.c.status)
        )
        return {int(status): int(n) for status, n in rows.all()}


async def calls_by_purpose(engine: AsyncEngine, since: datetime) -> dict[str, int]:
    """Calls made since `since`, counted by purpose (webhook, catchup, backfill, oauth, …)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(api_requests.c.purpose, func.count())
            .where(api_requests.c.at >= since)
            .group_by(api_requests.c.purpose)
        )
        return {str(purpose): int(n) for purpose, n in rows.all()}


async def count_calls(engine: AsyncEngine, since: datetime, purposes: Collection[str]) -> int:
    """Calls of these purposes made since `since`, by every process."""
    async with engine.connect() as conn:
        n = await conn.scalar(
            select(func.count())
            .select_from(api_requests)
            .where(api_requests.c.at >= since, api_requests.c.purpose.in_(list(purposes)))
        )
    return int(n or 0)
