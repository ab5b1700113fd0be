"""Retention: done and ignored events older than AMOSYNC_EVENT_RETENTION_DAYS go, in small
batches; failed and pending ones stay; the API call log keeps two days."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from amosync.db.database import Database
from amosync.db.tables import api_requests, webhook_events
from amosync.inbox.retention import prune
from amosync.services import build_services, periodic_jobs
from amosync.settings import Settings

NOW = datetime.now(UTC)


def event(status: str, age_days: float, settled_days: float | None = None) -> dict[str, object]:
    received = NOW - timedelta(days=age_days)
    settled = NOW - timedelta(days=settled_days if settled_days is not None else age_days)
    return {
        "received_at": received,
        "source": "webhook",
        "entity": "leads",
        "action": "update",
        "entity_id": 1,
        "payload": {"id": "1"},
        "status": status,
        "attempts": 1,
        "processed_at": None if status == "pending" else settled,
        "available_at": received,
    }


async def add(database: Database, rows: list[dict[str, object]]) -> None:
    async with database.write() as conn:
        await conn.execute(insert(webhook_events), rows)


async def statuses(database: Database) -> list[tuple[str, int]]:
    async with database.read() as conn:
        rows = await conn.execute(
            select(webhook_events.c.status, webhook_events.c.received_at).order_by(
                webhook_events.c.id
            )
        )
        return [(s, round((NOW - at).total_seconds() / 86400)) for s, at in rows]


async def test_default_retention_keeps_30_days_and_every_failed_or_pending_event(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = make_settings()
    assert 30 == settings.event_retention_days
    await add(
        database,
        [
            event("done", 40),
            event("ignored", 31),
            event("failed", 40),
            event("pending", 40),
            event("done", 29),
            event("ignored", 1),
            event("done", 40, settled_days=2),  # retried lately: not old yet
        ],
    )
    pruned = await prune(database, timedelta(days=settings.event_retention_days))
    assert 2 == pruned.events
    assert [("failed", 40), ("pending", 40), ("done", 29), ("ignored", 1), ("done", 40)] == (
        await statuses(database)
    )


async def test_dry_run_counts_without_deleting(database: Database) -> None:
    await add(database, [event("done", 40), event("done", 1)])
    pruned = await prune(database, timedelta(days=30), dry_run=True)
    assert (1, 0) == (pruned.events, pruned.batches)
    assert 2 == len(await statuses(database))


async def test_rows_go_in_small_batches(database: Database) -> None:
    """Ten old rows, three per transaction: four transactions, every row gone."""
    await add(database, [event("done", 40) for _ in range(10)] + [event("failed", 40)])
    pruned = await prune(database, timedelta(days=30), batch_rows=3, pause=0.0)
    assert 10 == pruned.events
    assert 4 + 1 == pruned.batches  # events, then one for the (empty) call log
    assert [("failed", 40)] == await statuses(database)


async def test_a_tuned_retention_and_the_call_log(database: Database) -> None:
    await add(database, [event("done", 3), event("ignored", 0.5)])
    async with database.write() as conn:
        await conn.execute(
            insert(api_requests),
            [
                {
                    "at": NOW - timedelta(days=d),
                    "method": "GET",
                    "path": "/api/v4/leads",
                    "status": 200,
                    "duration_ms": 5,
                    "purpose": "webhook",
                }
                for d in (3, 2.5, 1)
            ],
        )
    pruned = await prune(database, timedelta(days=2))
    assert (1, 2) == (pruned.events, pruned.api_requests)
    assert [("ignored", 0)] == await statuses(database)


async def test_the_worker_runs_it_as_a_periodic_job(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = make_settings(event_retention_days=1)
    services = build_services(settings)
    try:
        jobs = {j.name: j for j in periodic_jobs(settings, services.db, services.client)}
        await add(database, [event("done", 2), event("done", 0)])
        await jobs["retention"].run()
    finally:
        await services.aclose()
    assert 3600 == jobs["retention"].interval
    assert [("done", 0)] == await statuses(database)
