"""Events received and processed per minute over the last hours (the status page's chart).

Counted in SQL by minute (only non-empty minutes come back), each count a range of one index
(received_at; processed_at, partial, migration 0004): the cost follows the events of the
last hours, not the events kept, and no row of the table is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.inbox.store import DONE

CHART_HOURS = 3


@dataclass(frozen=True)
class Activity:
    start: datetime  # the first minute shown (UTC, whole minute)
    received: list[int]  # one count per minute, oldest first
    processed: list[int]

    @property
    def minutes(self) -> int:
        return len(self.received)


def _minute_key(column: Any, dialect: str) -> Any:
    """The minute of a UTC timestamp column: 'YYYY-MM-DD HH:MM' on SQLite, a naive UTC
    timestamp on PostgreSQL (`_key` makes both the text)."""
    if dialect == "sqlite":  # stored as naive UTC text: 'YYYY-MM-DD HH:MM:SS.ffffff'
        return func.substr(column, 1, 16)
    # date_trunc rather than to_char: half the time over the rows of 3 busy hours.
    return func.date_trunc("minute", func.timezone("UTC", column))


def _key(minute: str | datetime) -> str:
    return minute if isinstance(minute, str) else minute.strftime("%Y-%m-%d %H:%M")


async def per_minute(
    db: Database, hours: int = CHART_HOURS, now: datetime | None = None
) -> Activity:
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(hours=hours) + timedelta(minutes=1)
    dialect = db.dialect
    received_key = _minute_key(ev.c.received_at, dialect)
    processed_key = _minute_key(ev.c.processed_at, dialect)
    async with db.read() as conn:
        received: dict[str, int] = _by_key(
            (
                await conn.execute(
                    select(received_key, func.count())
                    .where(ev.c.received_at >= start)
                    .group_by(received_key)
                )
            ).all()
        )
        processed: dict[str, int] = _by_key(
            (
                await conn.execute(
                    # A range of the partial (processed_at, status) index: `processed_at >=`
                    # implies its `processed_at IS NOT NULL` on both databases. Status is
                    # counted, not filtered on: given `status = 'done'`, both planners
                    # preferred the status index, whose range is every done event kept.
                    select(processed_key, func.sum(case((ev.c.status == DONE, 1), else_=0)))
                    .where(ev.c.processed_at >= start)
                    .group_by(processed_key)
                )
            ).all()
        )
    keys = [(start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(hours * 60)]
    return Activity(
        start=start,
        received=[int(received.get(k, 0)) for k in keys],
        processed=[int(processed.get(k, 0)) for k in keys],
    )


def _by_key(rows: Any) -> dict[str, int]:
    return {_key(minute): int(n) for minute, n in rows}
