"""Read-only figures about the sync, computed from the database so any process tells the truth.

Used by `amosync status`, `/health` (and later the status page and `/metrics`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.catchup.reconcile import LAST_RUN_KEY
from amosync.catchup.state import load as load_state
from amosync.db.api_log import calls_by_purpose, calls_by_status
from amosync.db.reads import read_connection
from amosync.db.tables import companies, contacts, deals
from amosync.inbox.store import InboxStore
from amosync.worker.heartbeat import WorkerRow, recent_workers


@dataclass(frozen=True)
class SyncStats:
    deals: int
    deals_with_rentprog_id: int
    deals_deleted: int
    contacts: int
    companies: int
    events_by_status: dict[str, int]
    backlog: int
    oldest_pending_age_seconds: float | None
    last_webhook_at: datetime | None
    api_requests_last_hour: int
    api_requests_by_status_last_hour: dict[int, int]
    workers: list[WorkerRow]
    # Calls by purpose (webhook, catchup, backfill, …): catch-up and backfill share the budget.
    api_requests_by_purpose_last_hour: dict[str, int] = field(default_factory=dict)
    last_catchup: dict[str, Any] | None = None  # the last catch-up run's report

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["last_webhook_at"] = self.last_webhook_at.isoformat() if self.last_webhook_at else None
        data["api_requests_by_status_last_hour"] = {
            str(k): v for k, v in self.api_requests_by_status_last_hour.items()
        }
        data["workers"] = [
            {**asdict(w), "last_seen": w.last_seen.isoformat()} for w in self.workers
        ]
        return data


async def collect_stats(engine: AsyncEngine) -> SyncStats:
    now = datetime.now(UTC)
    inbox = await InboxStore(engine).stats()
    async with read_connection(engine) as conn:
        n_deals = await conn.scalar(select(func.count()).select_from(deals)) or 0
        with_rp = (
            await conn.scalar(
                select(func.count())
                .select_from(deals)
                .where(deals.c.rentprog_id.is_not(None), ~deals.c.is_deleted)
            )
            or 0
        )
        deleted = (
            await conn.scalar(select(func.count()).select_from(deals).where(deals.c.is_deleted))
            or 0
        )
        n_contacts = await conn.scalar(select(func.count()).select_from(contacts)) or 0
        n_companies = await conn.scalar(select(func.count()).select_from(companies)) or 0
    calls = await calls_by_status(engine, now - timedelta(hours=1))
    return SyncStats(
        deals=n_deals,
        deals_with_rentprog_id=with_rp,
        deals_deleted=deleted,
        contacts=n_contacts,
        companies=n_companies,
        events_by_status=inbox.by_status,
        backlog=inbox.backlog,
        oldest_pending_age_seconds=inbox.oldest_pending_age(now),
        last_webhook_at=inbox.last_received_at,
        api_requests_last_hour=sum(calls.values()),
        api_requests_by_status_last_hour=calls,
        workers=await recent_workers(engine, timedelta(minutes=5)),
        api_requests_by_purpose_last_hour=await calls_by_purpose(engine, now - timedelta(hours=1)),
        last_catchup=await load_state(engine, LAST_RUN_KEY),
    )
