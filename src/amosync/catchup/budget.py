"""The hourly API budget of catch-up and backfill, and when they must give way.

amoCRM's allowance is shared by everything that uses the account, so background work is
capped: catch-up and backfill together may spend `api_budget_per_hour` requests in any
sliding hour, counted from `amocrm_api_requests` (every process logs its calls there with
a purpose), so several workers and a `backfill` in another terminal share one budget.
Webhook-driven fetches are never counted against it and never wait for it: background work
also steps aside while the webhook backlog is larger than one worker batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from amosync.db.api_log import count_calls, nth_call_at
from amosync.inbox.counts import due_count

if TYPE_CHECKING:
    from amosync.db.database import Database

CATCHUP, BACKFILL = "catchup", "backfill"

# The worker's background verification (catchup/verify_job.py): inside this budget, and
# capped on its own by `verify_calls_per_hour`.
VERIFY = "verify"
# Pipelines, stages, users, field definitions, loss reasons (reference/job.py).
REFERENCE = "reference"
BUDGETED_PURPOSES = (CATCHUP, BACKFILL, VERIFY, REFERENCE)
WINDOW = timedelta(hours=1)

# Why a run stopped before it was complete (it resumes from its cursor next time).
STOP_BUDGET = "budget"
STOP_BACKLOG = "backlog"
STOP_SHUTDOWN = "shutdown"


async def spent_last_hour(db: Database, now: datetime | None = None) -> int:
    """Requests catch-up and backfill made in the last hour, from every process."""
    return await count_calls(db, (now or datetime.now(UTC)) - WINDOW, BUDGETED_PURPOSES)


async def due_backlog(db: Database) -> int:
    """Webhook events waiting for the worker right now."""
    return await due_count(db)


@dataclass(frozen=True)
class ApiBudget:
    db: Database
    per_hour: int
    # Background work waits while more webhook events than this are due.
    backlog_limit: int

    async def remaining(self) -> int:
        return max(0, self.per_hour - await spent_last_hour(self.db))

    async def seconds_until_free(self) -> float:
        """How long until the oldest budgeted call in the window leaves it (0 if free now)."""
        now = datetime.now(UTC)
        spent = await spent_last_hour(self.db, now)
        if spent < self.per_hour:
            return 0.0
        if self.per_hour == 0:
            return WINDOW.total_seconds()
        # The call whose expiry brings the spend below the cap.
        freeing = await nth_call_at(self.db, now - WINDOW, BUDGETED_PURPOSES, spent - self.per_hour)
        if freeing is None:
            return 1.0
        return max(1.0, (freeing + WINDOW - now).total_seconds())

    async def stop_reason(self) -> str | None:
        """Why background work may not send its next request now, or None."""
        if await self.remaining() < 1:
            return STOP_BUDGET
        if await due_backlog(self.db) > self.backlog_limit:
            return STOP_BACKLOG
        return None
