"""Scenario 6, storage trouble: while the database refuses connections (PostgreSQL) or is
locked by another writer (SQLite), webhooks get 503, never 200; once it is back, the same
process stores them again without a restart."""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL
from tests.reliability.harness import FORM, SECRET, Fleet, lead_body, query, report
from tests.storage_faults import cut_sessions, disk_full, postgres_read_only, small_disk


@contextmanager
def postgres_refusing(db_url: str) -> Iterator[None]:
    """No new connections to the database and every open one cut, as in a failover."""
    name = make_url(db_url).database
    assert name is not None
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name))
        )
        cut_sessions(admin, name)
        try:
            yield
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                    sql.Identifier(name)
                )
            )


@contextmanager
def sqlite_locked(db_url: str) -> Iterator[None]:
    """Another process holds SQLite's write lock (a backup tool, a stuck admin session)."""
    path = make_url(db_url).database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def post(client: httpx.Client, lead_id: int) -> tuple[int, str]:
    request_id = uuid.uuid4().hex
    body = lead_body("webhook_leads_update_2025_unirock.form", lead_id)
    headers = {**FORM, "X-amoCRM-RequestId": request_id}
    try:
        status = client.post(f"/amocrm/{SECRET}", content=body, headers=headers).status_code
    except httpx.TimeoutException:
        status = 0
    return status, request_id


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql", "sqlite"], indirect=True)
def test_webhooks_get_503_while_the_database_is_gone_and_200_after(
    db_url: str, tmp_path: Path
) -> None:
    """During the outage every answer is 503 (or no answer) and nothing answered 200 is
    missing; afterwards the same process answers 200 and stores again."""
    outage = postgres_refusing if db_url.startswith("postgresql") else sqlite_locked
    fleet = Fleet(db_url, "http://127.0.0.1:9", tmp_path)
    try:
        web = fleet.web()
        # amoCRM gives up after 2 s; a SQLite writer waits out busy_timeout (15 s) first.
        with httpx.Client(base_url=web.url, timeout=20) as client:
            before = post(client, 1)
            with outage(db_url):
                started = time.monotonic()
                refusals = 3 if db_url.startswith("postgresql") else 1  # SQLite: 15 s each
                during = [post(client, 2 + n) for n in range(refusals)]
                outage_seconds = time.monotonic() - started
                # SQLite: WAL readers are not blocked by the writer, so /health is not asked.
                health = client.get("/health").status_code if refusals == 3 else None
            deadline = time.monotonic() + 15
            after = post(client, 10)
            while after[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                after = post(client, 10)
            recovered = web.popen is not None and web.popen.poll() is None
    finally:
        fleet.stop()

    stored = {r[0] for r in query(db_url, "SELECT request_id FROM amocrm_webhook_events")}
    report(
        f"storage-{db_url.split(':', 1)[0]}",
        during=[s for s, _ in during],
        seconds_during_outage=round(outage_seconds, 1),
        health_during=health,
    )
    assert 200 == before[0]
    assert all(status in {503, 0} for status, _ in during), during
    assert not any(rid in stored for _, rid in during)
    assert health in ({503} if db_url.startswith("postgresql") else {None})
    assert 200 == after[0]
    assert {before[1], after[1]} <= stored
    assert recovered
    assert 1 == web.starts  # no restart was needed


@dataclass(frozen=True)
class OutageRun:
    before: tuple[int, str]
    during: list[tuple[int, str]]
    after: tuple[int, str]
    stored: set[str]
    starts: int


def ride_out(
    db_url: str, tmp_path: Path, outage: AbstractContextManager[object], *, settle: float
) -> OutageRun:
    """One webhook before, three during `outage`, then one retried for up to `settle` s."""
    fleet = Fleet(db_url, "http://127.0.0.1:9", tmp_path)
    try:
        web = fleet.web()
        with httpx.Client(base_url=web.url, timeout=20) as client:
            before = post(client, 1)
            with outage:
                during = [post(client, 2 + n) for n in range(3)]
            deadline = time.monotonic() + settle
            after = post(client, 10)
            while after[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
                after = post(client, 10)
    finally:
        fleet.stop()
    stored = {r[0] for r in query(db_url, "SELECT request_id FROM amocrm_webhook_events")}
    return OutageRun(before, during, after, stored, web.starts)


def assert_refused_then_recovered(run: OutageRun) -> None:
    """503 for each webhook during the outage (never 200, never a 4xx amoCRM would not
    retry), none of them stored, and the same process storing again afterwards."""
    assert 200 == run.before[0]
    assert [503, 503, 503] == [status for status, _ in run.during]
    assert not any(rid in run.stored for _, rid in run.during)
    assert 200 == run.after[0]
    assert {run.before[1], run.after[1]} <= run.stored
    assert 1 == run.starts


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_webhooks_get_503_while_the_database_is_read_only_and_200_after(
    db_url: str, tmp_path: Path
) -> None:
    """A read-only database is a storage outage too: 503 (amoCRM retries), never 200 and
    never a 4xx that would make amoCRM drop the event; writes resume without a restart."""
    # New sessions must reconnect after the outage: allow them 15 s.
    run = ride_out(db_url, tmp_path, postgres_read_only(db_url), settle=15)

    report("storage-postgresql-read-only", during=[s for s, _ in run.during])
    assert_refused_then_recovered(run)


@pytest.mark.slow
def test_webhooks_get_503_while_the_sqlite_disk_is_full_and_200_after(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """SQLite on a full disk: 503 (amoCRM retries), nothing half-stored; once space is
    freed the same process stores again."""
    with small_disk(tmp_path / "disk", 4096) as disk:
        database = disk / "amosync.db"
        shutil.copy(sqlite_template, database)
        # Freed space is usable at once: the first webhook after it must be stored.
        run = ride_out(f"sqlite:///{database}", tmp_path, disk_full(disk), settle=0)

    report("storage-sqlite-disk-full", during=[s for s, _ in run.during])
    assert_refused_then_recovered(run)
