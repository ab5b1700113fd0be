"""The composition root: every long-lived object is built here, once, from Settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from amosync.amocrm import AmoClient
from amosync.amocrm.shared_limit import MAX_BLOCK, ReleaseAndRecord, SharedWindowLimiter
from amosync.catchup import CATCHUP, catchup_job
from amosync.catchup.budget import REFERENCE, VERIFY
from amosync.catchup.verify_job import verify_job
from amosync.core.mapping import RentProgField
from amosync.db.api_log import DbCallRecorder
from amosync.db.database import Database
from amosync.inbox import InboxStore
from amosync.inbox.retention import retention_job
from amosync.oauth_setup import token_keepalive_job, token_provider
from amosync.reference.job import reference_job
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob
from amosync.worker.loop import Worker, WorkerConfig
from amosync.worker.subscription import subscription_job

log = logging.getLogger(__name__)


def rentprog_field(settings: Settings) -> RentProgField:
    return settings.rentprog_field


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        batch_size=settings.worker_batch_size,
        linger=settings.worker_linger,
        poll_interval=settings.worker_poll_interval,
        lease_seconds=settings.worker_lease_seconds,
        max_attempts=settings.max_attempts,
        max_clock_skew=settings.max_clock_skew,
        retry_base_delay=settings.retry_base_delay,
        retry_max_delay=settings.retry_max_delay,
        ip_block_pause=settings.ip_block_cooldown,
    )


def build_client(
    settings: Settings,
    db: Database,
    *,
    purpose: str = "webhook",
    transport: httpx.AsyncBaseTransport | None = None,
    max_wait: float | None = None,
) -> AmoClient:
    """`max_wait`: fail with RetryLater rather than wait longer for the rate limit (doctor)."""
    limiter = rate_limiter(settings, db, max_wait=max_wait)
    return AmoClient(
        # With no account configured the client still exists; every call reports that the
        # configuration is missing (via ReauthRequired) and events wait, pending.
        settings.api_base_url or "https://amocrm.invalid",
        # OAuth (refreshing, tokens in the database) or the long-lived token: oauth_setup.py.
        token_provider(settings, db, transport=transport),
        limiter,
        timeout=settings.api_timeout,
        max_answer_bytes=settings.api_max_answer_bytes,
        # The slot's release and the call's log row in one transaction.
        after_answer=ReleaseAndRecord(limiter, DbCallRecorder(db, purpose)),
        transport=transport,
        ip_block_cooldown=settings.ip_block_cooldown,
        max_retry_after=settings.max_retry_after,
    )


def rate_limiter(
    settings: Settings, db: Database, *, max_wait: float | None = None
) -> SharedWindowLimiter:
    """One limit for every process on the database (amoCRM counts per account, not process).

    Kept in the database on SQLite too: a slot costs about 2.5 ms of CPU there and on
    PostgreSQL, against 100+ ms for the API call it allows, and `serve` plus a `worker` or
    a CLI command on one SQLite file are several processes as well.
    """
    return SharedWindowLimiter(
        db,
        settings.api_rate_limit,
        max_pause=settings.max_retry_after,
        max_block=max(MAX_BLOCK, settings.ip_block_cooldown),
        max_wait=max_wait,
    )


def periodic_jobs(
    settings: Settings,
    db: Database,
    client: AmoClient,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[PeriodicJob]:
    """Jobs the worker runs beside events: catch-up, token keep-alive, subscription checks,
    retention."""

    def own_client(purpose: str) -> Callable[[], AmoClient]:
        # Each budgeted job has its own client: its calls are logged under its purpose and
        # count against the hourly budget.
        return lambda: build_client(settings, db, purpose=purpose, transport=transport)

    maybe = [
        catchup_job(settings, db, own_client(CATCHUP)),
        verify_job(settings, db, own_client(VERIFY)),
        reference_job(settings, db, own_client(REFERENCE)),
        token_keepalive_job(settings, db),
        subscription_job(settings, db, client),
    ]
    jobs = [job for job in maybe if job is not None]
    jobs.append(retention_job(settings, db))  # done/ignored events and the call log
    return jobs


@dataclass
class Services:
    settings: Settings
    db: Database
    inbox: InboxStore
    client: AmoClient
    worker: Worker

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.db.dispose()


def build_services(
    settings: Settings, *, amocrm_transport: httpx.AsyncBaseTransport | None = None
) -> Services:
    db = Database.open(settings.database_url)
    inbox = InboxStore(db)
    client = build_client(settings, db, transport=amocrm_transport)
    jobs = periodic_jobs(settings, db, client, amocrm_transport)
    worker = Worker(db, inbox, client, rentprog_field(settings), worker_config(settings), jobs)
    return Services(settings, db, inbox, client, worker)
