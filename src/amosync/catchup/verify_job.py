"""The worker's background verification: a few hundred stored rows an hour, oldest first.

Every `3600 / verify_calls_per_hour` seconds (10 an hour by default: 2,500 rows) the worker
verifies one batch of 250 stored deals or contacts — whichever kind's oldest-verified row
is older, never-verified rows first — so the whole copy is compared with amoCRM over and
over, at a cost set in advance. Like catch-up it holds a lease (one run at a time across
processes), spends only inside the hourly API budget (its calls are logged with purpose
`verify`: capped at `verify_calls_per_hour` and counted in `api_budget_per_hour`), and
steps aside while the webhook backlog is larger than one worker batch. Each run stores its
result under `verify.last` (catchup/verify_state.py) for `/health`, `status` and the page.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from amosync.amocrm.client import AmoClient
from amosync.catchup.budget import STOP_BUDGET, VERIFY, WINDOW, ApiBudget
from amosync.catchup.verify import Verifier, VerifyReport
from amosync.catchup.verify_select import TABLES, next_candidate, oldest_verified
from amosync.catchup.verify_state import write_last
from amosync.core.mapping import RentProgField
from amosync.core.plan import MAX_IDS_PER_CALL
from amosync.db.api_log import count_calls
from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.errors import AmoCRMError
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob

log = logging.getLogger(__name__)

LEASE_KEY = "verify.lease"
LEASE_SECONDS = 300.0
FIRST_RUN_DELAY = 60.0  # after a start, the webhook backlog first
SHORTEST_INTERVAL = 60.0


def verify_interval(calls_per_hour: int) -> float:
    """Seconds between runs: one batch call per run spreads the hour's calls evenly."""
    return max(SHORTEST_INTERVAL, 3600.0 / max(calls_per_hour, 1))


class BackgroundVerifier:
    def __init__(
        self,
        db: Database,
        client: AmoClient,
        budget: ApiBudget,
        rentprog: RentProgField,
        *,
        calls_per_hour: int,
        owner: str | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._budget = budget
        self._rentprog = rentprog
        self._calls_per_hour = calls_per_hour
        self._lease = Lease(db, LEASE_KEY, owner or f"verify-{uuid.uuid4().hex[:8]}", LEASE_SECONDS)

    async def stop_reason(self) -> str | None:
        """Why the next request may not be sent now (own cap, shared budget, backlog)."""
        since = datetime.now(UTC) - WINDOW
        if await count_calls(self._db, since, (VERIFY,)) >= self._calls_per_hour:
            return STOP_BUDGET
        return await self._budget.stop_reason()

    async def run(self, *, min_gap: float = 0.0) -> VerifyReport | None:
        """Verify one batch; None when skipped (another process's turn, budget, backlog,
        nothing stored)."""
        if await self._lease.acquire(min_gap=min_gap) is not None:
            return None
        finished = False
        try:
            if await self.stop_reason() is not None:
                return None
            entity = await self._next_entity()
            if entity is None:
                return None
            async with self._db.read() as conn:
                ids = await oldest_verified(conn, entity, MAX_IDS_PER_CALL)
            verifier = Verifier(self._db, self._client, self._rentprog, may_call=self._free)
            report = await verifier.verify(entity, ids)
            result = {**report.as_json(), "source": "worker", "entity": entity}
            async with self._db.write() as conn:
                await write_last(conn, result)
            finished = True
            log.info("verify_run", extra={"event": "verify_run", **result})
            return report
        finally:
            await self._lease.release(finished=finished)

    async def _free(self) -> bool:
        return await self.stop_reason() is None

    async def _next_entity(self) -> str | None:
        async with self._db.read() as conn:
            found = [await next_candidate(conn, entity) for entity in TABLES]
        candidates = [c for c in found if c is not None]
        if not candidates:
            return None
        return min(candidates, key=lambda c: c.sort_key()).entity


def background_verifier(settings: Settings, db: Database, client: AmoClient) -> BackgroundVerifier:
    return BackgroundVerifier(
        db,
        client,
        ApiBudget(db, settings.api_budget_per_hour, settings.worker_batch_size),
        settings.rentprog_field,
        calls_per_hour=settings.verify_calls_per_hour,
    )


def verify_job(
    settings: Settings, db: Database, make_client: Callable[[], AmoClient]
) -> PeriodicJob | None:
    """The job, or None when `verify_calls_per_hour` is 0 or no account is configured.

    `make_client` builds a client whose calls are logged with purpose "verify"; one per run.
    """
    if settings.verify_calls_per_hour <= 0 or settings.api_base_url is None:
        return None
    interval = verify_interval(settings.verify_calls_per_hour)

    async def run() -> None:
        client = make_client()
        try:
            await background_verifier(settings, db, client).run(min_gap=interval / 2)
        except AmoCRMError as exc:
            # The worker reports token, IP and outage problems itself; the rows stay as
            # they were and come first next run.
            log.warning("verify_failed", extra={"event": "verify_failed", "error": str(exc)})
        finally:
            await client.aclose()

    return PeriodicJob("verify", interval, run, first_delay=min(interval, FIRST_RUN_DELAY))
