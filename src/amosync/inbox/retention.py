"""Keep the inbox bounded: done and ignored events older than the retention are deleted.

The worker runs `retention_job` hourly (and `amosync events prune` on demand). Rows go in
batches of `BATCH_ROWS`, one short write transaction each, with a pause between batches:
on SQLite the webhook writer takes turns with these deletes (db/turns.py) and never waits
behind one long delete. Failed events are kept until someone retries or resolves them, and
pending ones are work still to do. The API call log (two days, db/api_log.py) is trimmed
the same way here, so it shrinks even in a process that makes few calls.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select

from amosync.db.api_log import KEEP as API_LOG_KEEP
from amosync.db.database import Database
from amosync.db.tables import api_requests
from amosync.db.tables import webhook_events as ev
from amosync.inbox.store import DONE, IGNORED
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob

log = logging.getLogger(__name__)

PRUNED_STATUSES = (DONE, IGNORED)
# Rows per delete transaction: ~10 ms on SQLite (measured, docs/OPERATIONS.md).
BATCH_ROWS = 1000
# Seconds between two batches, so other writers get their turns in between.
BATCH_PAUSE = 0.05
RETENTION_INTERVAL = 3600.0
RETENTION_FIRST_DELAY = 120.0


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pruning pass deleted (or, dry, would delete)."""

    cutoff: datetime
    events: int
    api_requests: int
    batches: int


def _old_events(cutoff: datetime) -> ColumnElement[bool]:
    """Done or ignored, received *and* settled before `cutoff` (an old event retried and
    settled yesterday stays until it is old too)."""
    return and_(
        ev.c.received_at < cutoff,
        ev.c.status.in_(PRUNED_STATUSES),
        or_(ev.c.processed_at.is_(None), ev.c.processed_at < cutoff),
    )


async def prune(
    db: Database,
    retention: timedelta,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_rows: int = BATCH_ROWS,
    pause: float = BATCH_PAUSE,
) -> Pruned:
    """Delete events older than `retention` (and call-log rows older than two days)."""
    at = now or datetime.now(UTC)
    cutoff = at - retention
    log_cutoff = at - API_LOG_KEEP
    if dry_run:
        async with db.read() as conn:
            events = await conn.scalar(select(func.count()).where(_old_events(cutoff)))
            calls = await conn.scalar(select(func.count()).where(api_requests.c.at < log_cutoff))
        return Pruned(cutoff, int(events or 0), int(calls or 0), 0)
    batches = 0
    events_done, events = await _in_batches(db, ev.c.id, _old_events(cutoff), batch_rows, pause)
    batches += events_done
    calls_done, calls = await _in_batches(
        db, api_requests.c.id, api_requests.c.at < log_cutoff, batch_rows, pause
    )
    batches += calls_done
    return Pruned(cutoff, events, calls, batches)


async def _in_batches(
    db: Database,
    key: ColumnElement[int],
    condition: ColumnElement[bool],
    batch_rows: int,
    pause: float,
) -> tuple[int, int]:
    """(transactions, rows deleted): `batch_rows` rows a transaction until none is left."""
    table = key.table
    chosen = select(key).where(condition).limit(batch_rows).scalar_subquery()
    statement = delete(table).where(key.in_(chosen))
    batches = deleted = 0
    while True:
        async with db.write() as conn:
            result = await conn.execute(statement)
        batches += 1
        count = max(result.rowcount or 0, 0)
        deleted += count
        if count < batch_rows:
            return batches, deleted
        await asyncio.sleep(pause)  # let webhook commits and the worker take their turns


def retention_job(settings: Settings, db: Database) -> PeriodicJob:
    """The worker's hourly pruning pass."""
    retention = timedelta(days=settings.event_retention_days)

    async def run() -> None:
        pruned = await prune(db, retention)
        if pruned.events or pruned.api_requests:
            log.info(
                "events_pruned",
                extra={
                    "event": "events_pruned",
                    "events": pruned.events,
                    "api_requests": pruned.api_requests,
                    "batches": pruned.batches,
                    "cutoff": pruned.cutoff.isoformat(timespec="seconds"),
                },
            )

    return PeriodicJob("retention", RETENTION_INTERVAL, run, first_delay=RETENTION_FIRST_DELAY)
