"""Helpers for tests that need the real app on a port with real data in it.

`serve_app` runs uvicorn (lifespan included, so the writer and worker run) in a thread;
`seed_through_pipeline` fills the database the way production does: webhooks in, the worker
fetching from the fake amoCRM, upserts out. `fail_one_event` makes one event `failed` by
having the fake answer 400 (with max_attempts=1 that is final).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.testing import FakeAmoState, Fault, seed_demo_account

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@contextmanager
def serve_app(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` on a free port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def demo_fake(leads: int = 5) -> FakeAmoState:
    """A fake account with `leads` deals (RentProg IDs RP-1001…), each with a main contact."""
    fake = FakeAmoState(rate_limit_rps=None)
    seed_demo_account(fake, leads)
    return fake


def webhook_body(lead_ids: list[int], action: str = "update") -> bytes:
    return "&".join(f"leads[{action}][{n}][id]={i}" for n, i in enumerate(lead_ids)).encode()


async def wait_until_no_pending(database: Database, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with database.read() as conn:
            pending = await conn.scalar(
                select(func.count()).select_from(ev).where(ev.c.status == "pending")
            )
        if pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"events still pending after {timeout} s")


async def seed_through_pipeline(
    client: httpx.AsyncClient, database: Database, fake: FakeAmoState, secret_path: str
) -> list[int]:
    """Send a webhook naming every fake lead and wait until the worker stored them all."""
    lead_ids = sorted(fake.table("leads"))
    response = await client.post(secret_path, content=webhook_body(lead_ids), headers=FORM)
    assert 200 == response.status_code
    await wait_until_no_pending(database)
    return lead_ids


async def fail_one_event(
    client: httpx.AsyncClient, database: Database, fake: FakeAmoState, secret_path: str, lead: int
) -> None:
    """One webhook about `lead` whose fetch amoCRM refuses (400): the event ends `failed`."""
    fake.script_faults(Fault(status=400), path_prefix="/api/v4/leads")
    response = await client.post(secret_path, content=webhook_body([lead]), headers=FORM)
    assert 200 == response.status_code
    await wait_until_no_pending(database)
