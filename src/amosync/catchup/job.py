"""The periodic catch-up job the worker runs every `reconcile_interval` seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable

from amosync.amocrm.client import AmoClient
from amosync.catchup.budget import ApiBudget
from amosync.catchup.reconcile import CatchupBusy, Reconciler
from amosync.db.database import Database
from amosync.errors import AmoCRMError
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob

log = logging.getLogger(__name__)

# A freshly started worker waits this long (at most one interval) before its first run, so
# a restart first drains the webhook backlog it finds.
FIRST_RUN_DELAY = 30.0


def budget_for(settings: Settings, db: Database) -> ApiBudget:
    return ApiBudget(db, settings.api_budget_per_hour, settings.worker_batch_size)


def reconciler_for(settings: Settings, db: Database, client: AmoClient) -> Reconciler:
    return Reconciler(
        db,
        client,
        budget_for(settings, db),
        settings.rentprog_field,
        overlap=settings.reconcile_overlap,
        max_clock_skew=settings.max_clock_skew,
    )


def catchup_job(
    settings: Settings, db: Database, make_client: Callable[[], AmoClient]
) -> PeriodicJob | None:
    """The job, or None when `reconcile_interval` is 0 (catch-up off) or no account is set.

    `make_client` builds a client whose calls are logged with purpose "catchup" (so they
    count against the budget); one is built per run and closed after it.
    """
    interval = settings.reconcile_interval
    if interval <= 0 or settings.api_base_url is None:
        return None

    async def run() -> None:
        client = make_client()
        try:
            # With several workers, the one that finds a run finished less than half an
            # interval ago skips its turn: N workers cost what one does.
            await reconciler_for(settings, db, client).run(min_gap=interval / 2)
        except CatchupBusy as busy:
            log.debug("catchup_skipped", extra={"event": "catchup_skipped", "reason": str(busy)})
        except AmoCRMError as exc:
            # Token refused, IP blocked, amoCRM down: the worker reports those itself; the
            # watermark stays and the next run starts from it.
            log.warning("catchup_failed", extra={"event": "catchup_failed", "error": str(exc)})
        finally:
            await client.aclose()

    return PeriodicJob("catchup", interval, run, first_delay=min(interval, FIRST_RUN_DELAY))
