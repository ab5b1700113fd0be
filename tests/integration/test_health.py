"""`/health` and `/health/live` tell the truth (issue #19): amoCRM as last observed by real
calls, pauses, failed events, the last webhook *from amoCRM*, verification, a real write."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from amosync.catchup.state import write_state
from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.doctor.facts import _events as doctor_events
from amosync.health import HealthProbe
from amosync.inbox.store import append_rows
from amosync.settings import Settings
from amosync.stats import collect_stats
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.web.app import create_app
from amosync.web.health import run_checks
from tests.storage_faults import disk_full, postgres_read_only, small_disk

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SECRET_URL = "/amocrm/s3cret-path-0123456789"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail


@asynccontextmanager
async def running(
    settings: Settings, fake: FakeAmoState | None = None, *, worker: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    transport = None if fake is None else httpx.ASGITransport(app=create_fake_amocrm(fake))
    app = create_app(settings, run_worker=worker, amocrm_transport=transport)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://amosync"
        ) as client,
    ):
        yield client


async def health_until(
    client: httpx.AsyncClient, done: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await client.get("/health")
        body: dict[str, Any] = answer.json()
        if done(body) or time.monotonic() > deadline:
            return answer.status_code, body
        await asyncio.sleep(0.1)


def state(body: dict[str, Any], name: str) -> str:
    return str(body["checks"].get(name, {}).get("state"))


async def add_events(database: Database, source: str, *, ago: float = 0.0, n: int = 1) -> None:
    at = datetime.now(UTC) - timedelta(seconds=ago)
    rows: list[dict[str, Any]] = [
        {
            "received_at": at,
            "source": source,
            "request_id": None,
            "entity": "contacts",
            "action": "linked",
            "entity_id": 20_000_000 + i,
            "account_id": None,
            "entity_updated_at": None,
            "payload": {},
            "status": "done",
            "attempts": 0,
            "available_at": at,
        }
        for i in range(n)
    ]
    async with database.write() as conn:
        await append_rows(conn, rows)


async def test_amocrm_unreachable_with_failed_events_is_503(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Nothing answers at amoCRM's address and events end `failed`: 503, `amocrm_api` fails
    with the age of the last call, and credentials are not claimed to be accepted."""
    settings = make_settings(amocrm_base_url=UNREACHABLE, max_attempts=1, api_timeout=1.0)
    async with running(settings) as client:
        stored = await client.post(SECRET_URL, content=b"leads[update][0][id]=5", headers=FORM)
        status, body = await health_until(
            client, lambda b: state(b, "failed_events") == "fail" and "amocrm_api" in b["checks"]
        )

    assert 200 == stored.status_code
    assert 503 == status, body
    api = body["checks"]["amocrm_api"]
    assert ("fail", False) == (api["state"], api["ok"])
    assert "unreachable" in api["detail"]
    assert "no answer" in api["detail"]
    assert api["age_seconds"] is not None
    assert "accepted" not in body["checks"]["amocrm_credentials"]["detail"]
    assert "fail" == state(body, "failed_events")


async def test_refused_token_fails_credentials_worker_and_pause(
    make_settings: Callable[..., Settings],
) -> None:
    """amoCRM answers 401: credentials fail (as last observed), the worker is alive but
    paused, and `amocrm_pause` says re-authorisation is needed."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.revoke_tokens()
    async with running(make_settings(), fake) as client:
        await client.post(SECRET_URL, content=b"leads[update][0][id]=5", headers=FORM)
        status, body = await health_until(client, lambda b: state(b, "worker") == "fail")

    assert 503 == status, body
    credentials = body["checks"]["amocrm_credentials"]
    assert "fail" == credentials["state"], credentials
    assert "amosync auth login" in credentials["detail"]
    assert "paused" in body["checks"]["worker"]["detail"]
    assert "fail" == state(body, "amocrm_pause")
    assert "re-authorised" in body["checks"]["amocrm_pause"]["detail"]


async def test_healthy_service_answers_200_with_states_and_ages(
    make_settings: Callable[..., Settings],
) -> None:
    """With the fake answering, every check is ok or warn, each with a state; /health/live
    answers 200 too."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="x")
    async with running(make_settings(), fake) as client:
        body_ = f"leads[update][0][id]={lead['id']}".encode()
        await client.post(SECRET_URL, content=body_, headers=FORM)
        status, body = await health_until(
            client, lambda b: state(b, "amocrm_credentials") == "ok" and b["status"] == "ok"
        )
        live = await client.get("/health/live")

    assert 200 == status, body
    assert {
        "database",
        "schema",
        "worker",
        "amocrm_credentials",
        "amocrm_api",
        "amocrm_pause",
        "backlog",
        "failed_events",
        "last_webhook",
        "verification",
    } <= set(body["checks"])
    assert all(c["state"] in ("ok", "warn") for c in body["checks"].values()), body
    assert "writable" == body["checks"]["database"]["detail"]
    assert body["checks"]["amocrm_credentials"]["age_seconds"] is not None
    assert "last webhook from amoCRM" in body["checks"]["last_webhook"]["detail"]
    assert 200 == live.status_code
    assert "ok" == live.json()["database"]["state"]


async def test_last_webhook_counts_only_webhooks_from_amocrm(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Rows amosync queued itself (a backfill's linked contacts) are not a webhook: /health,
    `status` and `doctor` all say none arrived; an older real webhook is reported as such."""
    settings = make_settings()
    await add_events(database, "worker", n=3)
    await add_events(database, "n8n")
    none_yet = (await run_checks(settings, database))["last_webhook"]
    stats_none = (await collect_stats(database)).last_webhook_at
    doctor_none = (await doctor_events(database)).value
    await add_events(database, "webhook", ago=3600)
    await add_events(database, "worker")
    hour_ago = (await run_checks(settings, database))["last_webhook"]
    stats_hour = (await collect_stats(database)).last_webhook_at

    assert "no webhook from amoCRM received yet" == none_yet.detail
    assert None is stats_none
    assert doctor_none is not None
    assert None is doctor_none.last_received_at
    assert "60 min ago" in hour_ago.detail
    assert stats_hour is not None
    assert 3590 < (datetime.now(UTC) - stats_hour).total_seconds() < 3700


async def test_webhook_silence_threshold_fails_only_when_set(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Off by default (a quiet account is fine); with AMOSYNC_HEALTH_WEBHOOK_SILENCE set, an
    older last webhook fails the check."""
    await add_events(database, "webhook", ago=7200)
    default = (await run_checks(make_settings(), database))["last_webhook"]
    tuned = (await run_checks(make_settings(health_webhook_silence=3600), database))["last_webhook"]

    assert "ok" == default.state
    assert "fail" == tuned.state
    assert "AMOSYNC_HEALTH_WEBHOOK_SILENCE" in tuned.detail


async def mark_failed(database: Database, processed_ago: float) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(ev).values(
                status="failed", processed_at=datetime.now(UTC) - timedelta(seconds=processed_ago)
            )
        )


async def test_failed_events_fail_within_the_window(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A failed event from an hour ago fails the check (default window 24 h); with a window
    of 30 minutes it is old news."""
    await add_events(database, "webhook")
    await mark_failed(database, 3600)
    default = (await run_checks(make_settings(), database))["failed_events"]
    tuned = (await run_checks(make_settings(health_failed_window=1800), database))["failed_events"]

    assert "fail" == default.state
    assert "amosync events retry --failed" in default.detail
    assert "ok" == tuned.state


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("ok", "not run yet")),
        ({"checked": 10, "diverged": 2, "repaired": 1, "unrepaired": 1}, ("fail", "unrepaired 1")),
        ({"checked": 10, "diverged": 1, "repaired": 1, "unrepaired": 0}, ("ok", "repaired 1")),
    ],
)
async def test_verification_reads_verify_last(
    make_settings: Callable[..., Settings],
    database: Database,
    value: dict[str, Any] | None,
    expected: tuple[str, str],
) -> None:
    """The contract with the verification run: `amosync_state['verify.last']`."""
    if value is not None:
        async with database.write() as conn:
            at = datetime.now(UTC) - timedelta(minutes=5)
            await write_state(conn, "verify.last", {"at": at.isoformat(), **value, "examples": []})
    check = (await run_checks(make_settings(), database))["verification"]

    assert expected[0] == check.state
    assert expected[1] in check.detail
    assert (check.since is not None) == (value is not None)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"blocked_until": 600}, ("fail", "blocked this IP")),
        ({"paused_until": 600}, ("fail", "429")),
        ({"paused_until": 5}, ("warn", "429")),
        ({"paused_until": -5, "blocked_until": -5}, ("ok", "not paused")),
    ],
)
async def test_shared_pause_and_block_are_reported_with_until(
    make_settings: Callable[..., Settings],
    database: Database,
    row: dict[str, float],
    expected: tuple[str, str],
) -> None:
    """The shared rate-limit row: an IP block or a long 429 pause fails, a short pause warns;
    the detail says until when."""
    now = time.time()
    value: dict[str, Any] = {"slots": [], "paused_until": 0.0, "blocked_until": 0.0}
    value.update({k: now + v for k, v in row.items()})
    async with database.write() as conn:
        await write_state(conn, "amocrm_rate_limit", value)
    check = (await run_checks(make_settings(), database))["amocrm_pause"]

    assert expected[0] == check.state, check
    assert expected[1] in check.detail
    if expected[0] != "ok":
        assert "until " in check.detail
        assert "UTC" in check.detail


# -- storage: a real write, and the webhook commits -----------------------------------------


def big_body(first_id: int, n: int = 400) -> bytes:
    return "&".join(f"leads[update][{i}][id]={first_id + i}" for i in range(n)).encode()


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_storage_refusing_writes_fails_health_at_once(
    make_settings: Callable[..., Settings], db_url: str, tmp_path: Path
) -> None:
    """A full disk (SQLite on a tmpfs filled to the last byte) or a read-only database
    (PostgreSQL): webhooks get 503 and /health fails at once naming the database, while
    /health/live (a read) still answers."""
    with contextlib.ExitStack() as stack:
        if db_url.startswith("sqlite"):
            disk = stack.enter_context(small_disk(tmp_path / "disk", 2048))
            source = make_url(db_url).database
            assert source is not None
            shutil.copy(source, disk / "amosync.db")
            db_url = f"sqlite:///{disk / 'amosync.db'}"
        settings = make_settings(database_url=db_url)
        async with running(settings, worker=False) as client:
            before = await client.post(SECRET_URL, content=b"leads[update][0][id]=5", headers=FORM)
            if db_url.startswith("sqlite"):
                stack.enter_context(disk_full(disk))
                refused = await client.post(SECRET_URL, content=big_body(100), headers=FORM)
            else:
                stack.enter_context(postgres_read_only(db_url))
                refused = await client.post(SECRET_URL, content=big_body(100), headers=FORM)
            health = await client.get("/health")
            live = await client.get("/health/live")

    assert 200 == before.status_code
    assert 503 == refused.status_code
    assert 503 == health.status_code, health.text
    database = health.json()["checks"]["database"]
    assert "fail" == database["state"], database
    assert 200 == live.status_code, live.text


async def test_last_webhook_reused_probe_reads_only_new_rows_and_keeps_the_answer(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """The app's probe remembers the last webhook and then looks only at newer rows: a new
    webhook is seen, later rows amosync queued itself do not hide it."""
    settings, probe = make_settings(), HealthProbe()
    first = (await run_checks(settings, database, probe))["last_webhook"]
    await add_events(database, "webhook", ago=30)
    seen = (await run_checks(settings, database, probe))["last_webhook"]
    await add_events(database, "worker", n=5)
    kept = (await run_checks(settings, database, probe))["last_webhook"]

    assert "no webhook from amoCRM received yet" == first.detail
    assert seen.since is not None
    assert 25 < (datetime.now(UTC) - seen.since).total_seconds() < 60
    assert seen.since == kept.since
