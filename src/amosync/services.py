"""The composition root: every long-lived object is built here, once, from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.core.mapping import RentProgField
from amosync.db.api_log import DbCallRecorder
from amosync.db.engine import create_service_engine
from amosync.inbox import InboxStore
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob
from amosync.worker.loop import Worker, WorkerConfig

log = logging.getLogger(__name__)


def rentprog_field(settings: Settings) -> RentProgField:
    return RentProgField(settings.rentprog_field_id, settings.rentprog_field_name)


def worker_config(settings: Settings) -> WorkerConfig:
    return WorkerConfig(
        batch_size=settings.worker_batch_size,
        linger=settings.worker_linger,
        poll_interval=settings.worker_poll_interval,
        lease_seconds=settings.worker_lease_seconds,
        max_attempts=settings.max_attempts,
        retry_base_delay=settings.retry_base_delay,
        retry_max_delay=settings.retry_max_delay,
        ip_block_pause=settings.ip_block_cooldown,
    )


def build_client(
    settings: Settings,
    engine: AsyncEngine,
    *,
    purpose: str = "webhook",
    transport: httpx.AsyncBaseTransport | None = None,
) -> AmoClient:
    token = settings.amocrm_long_lived_token
    return AmoClient(
        # With no account configured the client still exists; every call reports that the
        # configuration is missing (via ReauthRequired) and events wait, pending.
        settings.api_base_url or "https://amocrm.invalid",
        LongLivedToken(token.get_secret_value() if token else None),
        SlidingWindowLimiter(settings.api_rate_limit),
        timeout=settings.api_timeout,
        recorder=DbCallRecorder(engine, purpose),
        transport=transport,
    )


def periodic_jobs(settings: Settings, engine: AsyncEngine, client: AmoClient) -> list[PeriodicJob]:
    """Jobs the worker runs beside events: catch-up, token keep-alive, subscription checks."""
    jobs: list[PeriodicJob] = []
    return jobs


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    inbox: InboxStore
    client: AmoClient
    worker: Worker

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.engine.dispose()


def build_services(
    settings: Settings, *, amocrm_transport: httpx.AsyncBaseTransport | None = None
) -> Services:
    engine = create_service_engine(settings.database_url)
    inbox = InboxStore(engine)
    client = build_client(settings, engine, transport=amocrm_transport)
    jobs = periodic_jobs(settings, engine, client)
    worker = Worker(engine, inbox, client, rentprog_field(settings), worker_config(settings), jobs)
    return Services(settings, engine, inbox, client, worker)
