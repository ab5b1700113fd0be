"""SQLite: a database file deleted or replaced under a running service, and a start on a
missing file that existed before (db/file_guard.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from amosync.db.file_guard import MissingDatabase, check_before_open
from amosync.settings import Settings
from amosync.web.app import create_app

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SECRET_URL = "/amocrm/s3cret-path-0123456789"


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, run_worker=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://amosync"
        ) as client,
    ):
        yield client


async def until_refused(client: httpx.AsyncClient, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = (await client.get("/health/live")).json()
        if body["status"] != "ok" or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


def db_path(db_url: str) -> Path:
    database = make_url(db_url).database
    assert database is not None
    return Path(database)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_file_deleted_or_replaced_under_serve_stops_acknowledging(
    make_settings: Callable[..., Settings],
    db_url: str,
    tmp_path: Path,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Within a few seconds webhooks get 503 (not 200 into the unlinked file), /health and
    /health/live fail naming the file, and one clear log line says what happened."""
    path = db_path(db_url)
    async with running(make_settings()) as client:
        before = await client.post(SECRET_URL, content=b"leads[update][0][id]=5", headers=FORM)
        if how == "deleted":
            path.unlink()
        else:
            shutil.copy(path, tmp_path / "other.db")
            os.replace(tmp_path / "other.db", path)
        started = time.monotonic()
        live = await until_refused(client)
        noticed_after = time.monotonic() - started
        after = await client.post(SECRET_URL, content=b"leads[update][0][id]=6", headers=FORM)
        health = await client.get("/health")
    # A connection opened at the moment of deletion may have made SQLite create an empty
    # file there; either way the next start must refuse rather than migrate it silently.
    # (A replacement holding a schema is a restore: the next start may use it.)
    if how == "deleted":
        with pytest.raises(MissingDatabase):
            check_before_open(path, create=False)

    assert 200 == before.status_code
    assert "failing" == live["status"], live
    assert noticed_after < 5
    # Deleted: a new connection may already have made SQLite create a file in its place.
    assert "was deleted" in live["database"]["detail"]
    assert 503 == after.status_code
    assert 503 == health.status_code
    assert "was deleted" in health.json()["checks"]["database"]["detail"]
    logged = [r for r in caplog.records if getattr(r, "event", None) == "database_file_replaced"]
    assert 1 == len(logged)
    assert logging.ERROR == logged[0].levelno


async def test_untouched_file_keeps_serving(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """The guard does not trip on a file that stays where it is (WAL and checkpoints do not
    change its inode)."""
    async with running(make_settings()) as client:
        for n in range(5):
            answer = await client.post(
                SECRET_URL, content=f"leads[update][0][id]={n + 1}".encode(), headers=FORM
            )
            assert 200 == answer.status_code
        await asyncio.sleep(2.5)  # one guard check
        live = await client.get("/health/live")

    assert 200 == live.status_code
