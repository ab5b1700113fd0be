"""In-process pieces for the fault and duplicate scenarios: a worker with short pauses, a
network that drops connections on demand, and inbox delivery of real webhook bodies."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from amosync.amocrm import AmoClient
from amosync.core.webhook import parse_webhook
from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.inbox import InboxStore
from amosync.services import build_client, rentprog_field
from amosync.settings import Settings
from amosync.webhook.rows import inbox_rows
from amosync.worker.loop import Worker, WorkerConfig

# Short pauses and delays, so a 401, a 403 or a retry costs the test seconds, not minutes.
FAST = WorkerConfig(
    batch_size=500,
    linger=0.0,
    poll_interval=0.02,
    lease_seconds=30.0,
    max_attempts=15,
    retry_base_delay=0.05,
    retry_max_delay=0.5,
    reauth_pause=0.3,
    ip_block_pause=0.5,
    heartbeat_interval=1.0,
)


class FlakyNetwork(httpx.AsyncBaseTransport):
    """Passes requests to `inner`, except that it can drop the next N connections: a reset
    after the request reached the server (answer lost) or a refused connect (never sent)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.resets_after_send = 0
        self.refused_connects = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused_connects > 0:
            self.refused_connects -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if self.resets_after_send > 0:
            self.resets_after_send -= 1
            await self._inner.handle_async_request(request)
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return await self._inner.handle_async_request(request)


@dataclass
class TestWorker:
    worker: Worker
    client: AmoClient

    async def run(self) -> None:
        await self.worker.run()

    def stop(self) -> None:
        self.worker.stop()


def make_worker(
    settings: Settings, database: Database, transport: httpx.AsyncBaseTransport
) -> TestWorker:
    client = build_client(settings, database, transport=transport)
    worker = Worker(database, InboxStore(database), client, rentprog_field(settings), FAST)
    return TestWorker(worker, client)


async def deliver(database: Database, body: bytes) -> int:
    """Store a webhook body the way the receiver does; returns the rows written."""
    rows = inbox_rows(
        parse_webhook(body).items, now=datetime.now(UTC), source="webhook", request_id=None
    )
    await InboxStore(database).append(rows)
    return len(rows)


async def statuses(database: Database) -> dict[str, int]:
    async with database.read() as conn:
        rows = await conn.execute(select(ev.c.status, func.count()).group_by(ev.c.status))
        return {str(s): int(n) for s, n in rows.all()}


async def drain(database: Database, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await statuses(database)).get("pending", 0) == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"not drained after {timeout} s: {await statuses(database)}")
