"""Read-only figures about the sync, computed from the database so any process tells the truth.

Used by `amosync status`, the status page and `/metrics`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from amosync.catchup.reconcile import LAST_RUN_KEY
from amosync.catchup.state import load as load_state
from amosync.catchup.verify_state import read_last as read_last_verify
from amosync.db.api_log import calls_by_purpose, calls_by_status
from amosync.db.database import Database
from amosync.inbox.store import FAILED, PENDING, STATUSES, InboxStore, age_seconds
from amosync.totals import totals
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
    last_verify: dict[str, Any] | None = None  # the last verification (`verify.last`)

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


async def collect_stats(db: Database, *, totals_max_age: float | None = None) -> SyncStats:
    """The figures, counted now; with `totals_max_age`, the counts over every row kept may
    come from this process's cache, that old at most (amosync/totals.py), while pending,
    failed, the oldest pending and the last webhook are still counted now."""
    now = datetime.now(UTC)
    kept = await totals(db, totals_max_age)
    live = await InboxStore(db).live()
    by_status = {s: kept.events_by_status.get(s, 0) for s in STATUSES}
    by_status.update({PENDING: live.pending, FAILED: live.failed})
    calls = await calls_by_status(db, now - timedelta(hours=1))
    return SyncStats(
        deals=kept.deals,
        deals_with_rentprog_id=kept.deals_with_rentprog_id,
        deals_deleted=kept.deals_deleted,
        contacts=kept.contacts,
        companies=kept.companies,
        events_by_status=by_status,
        backlog=live.pending,
        oldest_pending_age_seconds=age_seconds(live.oldest_pending_received_at, now),
        last_webhook_at=live.last_received_at,
        api_requests_last_hour=sum(calls.values()),
        api_requests_by_status_last_hour=calls,
        workers=await recent_workers(db, timedelta(minutes=5)),
        api_requests_by_purpose_last_hour=await calls_by_purpose(db, now - timedelta(hours=1)),
        last_catchup=await load_state(db, LAST_RUN_KEY),
        last_verify=await read_last_verify(db),
    )
