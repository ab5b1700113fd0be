"""Reads never block writes: on SQLite the status page, /health, /metrics and the read API
read in deferred, query-only transactions, so a writer's BEGIN IMMEDIATE never waits for them.

The probe: while each SELECT of a request runs inside its transaction, another connection to
the same file tries BEGIN IMMEDIATE without waiting (timeout 0). A read that began
IMMEDIATE holds the write lock, and the probe fails with "database is locked".
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import OperationalError

from amosync.db.database import Database
from amosync.db.engine import READ_ENGINE_NAME
from amosync.db.tables import webhook_events
from amosync.settings import Settings
from amosync.web.app import create_app
from amosync.web.metrics import snapshot
from amosync.web.status_page import EVENTS_SHOWN  # noqa: F401 - the page's module loads
from tests.integration.test_read_api import ADMIN, AUTH

READ_PATHS = [
    "/?lang=en",
    "/status/live?lang=ru",
    "/?q=RP-1001",
    "/health",
    "/metrics",
    "/api/deals?rentprog_id=RP-1001",
    "/api/deals/10000001",
    "/api/contacts/20000001",
    "/api/events?status=failed",
]


@contextlib.contextmanager
def write_lock_probe(path: str) -> Iterator[list[str]]:
    """Every SELECT run on `path` through an engine that can write tries BEGIN IMMEDIATE from
    a second connection first; yields the statements during which it could not (a read that
    began IMMEDIATE holds the lock itself). Reads on the query-only read engine are skipped:
    a writer of the app's own (the web process's presence beat, the health write probe) may
    hold the lock meanwhile, and that is not the read's doing."""
    blocked: list[str] = []
    probe = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if conn.engine.url.database != path or not statement.lstrip().upper().startswith("SELECT"):
            return
        if conn.engine.logging_name == READ_ENGINE_NAME:
            return  # a query-only connection: it cannot be what holds the lock
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            blocked.append(statement.split("\n")[0][:120])

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield blocked
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        probe.close()


@contextlib.asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app without its worker (whose own writes would hold the lock now and then)."""
    app = create_app(settings, run_worker=False)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        yield client


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_page_health_metrics_and_api_reads_leave_the_write_lock_free(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    settings = make_settings(admin_token=ADMIN)
    path = database.url.database
    assert path is not None
    async with app_client(settings) as client:
        # Something to read: a pending and a failed event.
        posted = await client.post(
            "/amocrm/s3cret-path-0123456789",
            content=b"leads[update][0][id]=10000001",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert 200 == posted.status_code
        with write_lock_probe(path) as blocked:
            for url in READ_PATHS:
                api = url.startswith(("/api/", "/metrics"))
                answer = await client.get(
                    url, headers=AUTH if api else None, auth=None if api else ("x", ADMIN)
                )
                assert answer.status_code in (200, 404, 503), (url, answer.status_code)

    assert [] == blocked


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_write_commits_while_a_long_read_is_open(database: Database) -> None:
    """A read held open for a second does not delay a webhook-style write (at most its
    own few milliseconds, far below the busy timeout)."""
    async with database.read() as reader:
        await reader.execute(select(webhook_events.c.id).limit(1))
        started = time.perf_counter()
        async with database.write() as writer:
            await writer.execute(text("DELETE FROM amosync_state WHERE key = 'nothing'"))
        waited = time.perf_counter() - started
        await asyncio.sleep(0.05)
        await reader.execute(select(webhook_events.c.id).limit(1))
    assert waited < 1.0


async def test_a_read_connection_cannot_write(database: Database) -> None:
    """Query-only on SQLite (a read can never take the write lock); on PostgreSQL a plain
    connection, as before."""
    async with database.read() as conn:
        if database.dialect == "sqlite":
            with pytest.raises(OperationalError, match="readonly"):
                await conn.execute(text("DELETE FROM amosync_state"))
        else:
            await conn.execute(text("DELETE FROM amosync_state WHERE key = 'nothing'"))


async def test_metrics_snapshot_reads_on_both_databases(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    snap = await snapshot(make_settings(), database)
    assert snap.stats is not None
