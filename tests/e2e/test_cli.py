"""The `amosync` command as a user runs it: real processes, real ports, the fake amoCRM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from amosync.db.urls import sync_url
from amosync.testing import (
    DEFAULT_TOKEN,
    RENTPROG_FIELD_ID,
    FakeAmoState,
    rentprog_field,
    run_fake_in_thread,
)

DATA = Path(__file__).parent.parent / "data"
AMOSYNC = [sys.executable, "-m", "amosync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(db_url: str, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(
        AMOSYNC_DATABASE_URL=db_url,
        AMOSYNC_AMOCRM_BASE_URL=base_url,
        AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
        AMOSYNC_WEBHOOK_SECRET="e2e-secret-0123456789",
        AMOSYNC_RENTPROG_FIELD_ID=str(RENTPROG_FIELD_ID),
        AMOSYNC_LOG_FORMAT="json",
        **extra,
    )
    return env


@pytest.fixture
def fake_url() -> Iterator[tuple[FakeAmoState, str]]:
    fake = FakeAmoState()
    with run_fake_in_thread(fake) as url:
        yield fake, url


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"exited with {proc.returncode}: {output}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


def test_serve_stores_webhooks_and_syncs_deals(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """`amosync serve` receives real fixture bodies; deals appear with their RentProg ID."""
    fake, base_url = fake_url
    with_rp = fake.add_lead(
        id=25434329, name="Kia Rio, 3 days", custom_fields_values=[rentprog_field("RP-5501")]
    )
    fake.add_lead(id=25434331, name="No booking yet")
    port = free_port()
    env = env_for(db_url, base_url, AMOSYNC_PORT=str(port), AMOSYNC_WORKER_LINGER="0.05")
    proc = subprocess.Popen(
        [*AMOSYNC, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        bodies = [
            f"leads[add][0][id]={with_rp['id']}&account[subdomain]=testaccount".encode(),
            b"leads[update][0][id]=25434331&leads[update][0][name]=ignored+by+design",
            (DATA / "webhook_task_add_kommo_docs.form").read_bytes(),
        ]
        answers = [
            httpx.post(
                f"http://127.0.0.1:{port}/amocrm/e2e-secret-0123456789", content=b, headers=form
            )
            for b in bodies
        ]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            deals = query(db_url, "SELECT id, name, rentprog_id FROM amocrm_deals ORDER BY id")
            if len(deals) == 2:
                break
            time.sleep(0.1)
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()

    assert [200, 200, 200] == [a.status_code for a in answers]
    assert [(25434329, "Kia Rio, 3 days", "RP-5501"), (25434331, "No booking yet", None)] == deals
    assert "ok" == health["status"], health
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too.
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "worker_stopped" in output
    assert "Application shutdown complete" in output
    assert DEFAULT_TOKEN not in output
    assert "e2e-secret-0123456789" not in output
    stored = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and json.loads(line).get("event") == "webhook_stored"
    ]
    assert {"25434329", "25434331"} <= {i for line in stored for i in line["ids"].split(",")}
    assert all(isinstance(line["ms"], float) for line in stored)


def test_split_serve_and_worker_processes(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """`serve --no-worker` only receives; a separate `amosync worker` process syncs."""
    fake, base_url = fake_url
    lead = fake.add_lead(name="split", custom_fields_values=[rentprog_field("RP-9")])
    port = free_port()
    env = env_for(db_url, base_url, AMOSYNC_PORT=str(port))
    subprocess.run([*AMOSYNC, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
    web = subprocess.Popen(
        [*AMOSYNC, "serve", "--no-worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        wait_http(f"http://127.0.0.1:{port}/health", web)
        response = httpx.post(
            f"http://127.0.0.1:{port}/amocrm/e2e-secret-0123456789",
            content=f"leads[status][0][id]={lead['id']}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        time.sleep(0.5)
        before = query(db_url, "SELECT count(*) FROM amocrm_deals")
        worker = subprocess.Popen(
            [*AMOSYNC, "worker"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not query(db_url, "SELECT id FROM amocrm_deals"):
            time.sleep(0.1)
        status = subprocess.run(
            [*AMOSYNC, "status", "--json"], env=env, cwd=tmp_path, capture_output=True, check=True
        )
    finally:
        for proc in (worker, web):
            if proc is not None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=20)

    report = json.loads(status.stdout)
    assert 200 == response.status_code
    assert [(0,)] == before
    assert [(lead["id"], "RP-9")] == query(db_url, "SELECT id, rentprog_id FROM amocrm_deals")
    assert (1, 1, 1) == (
        report["deals"],
        report["deals_with_rentprog_id"],
        report["events_by_status"]["done"],
    )
    assert 1 <= report["api_requests_last_hour"]
    assert worker is not None
    assert 0 == worker.returncode


def test_bad_configuration_exits_2_with_the_variable_name(tmp_path: Path) -> None:
    """A bad setting stops the command with exit code 2 and names the env variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env["AMOSYNC_API_RATE_LIMIT"] = "fast"
    result = subprocess.run(
        [*AMOSYNC, "status"], env=env, cwd=tmp_path, capture_output=True, text=True
    )

    assert 2 == result.returncode
    assert "AMOSYNC_API_RATE_LIMIT" in result.stderr


def test_unreachable_database_exits_1_without_password(tmp_path: Path) -> None:
    """An unreachable database gives exit 1 and a message naming it without the password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env["AMOSYNC_DATABASE_URL"] = "postgresql://amosync:hunter2@127.0.0.1:1/nowhere"
    result = subprocess.run(
        [*AMOSYNC, "worker", "--once"], env=env, cwd=tmp_path, capture_output=True, text=True
    )

    assert 1 == result.returncode
    assert "127.0.0.1:1/nowhere" in result.stderr
    assert "hunter2" not in result.stderr


def test_migrate_check_reports_pending_migrations(tmp_path: Path) -> None:
    """`migrate --check` exits 1 on a fresh database, 0 after `migrate`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env["AMOSYNC_DATABASE_URL"] = f"sqlite:///{tmp_path}/fresh.db"
    before = subprocess.run(
        [*AMOSYNC, "migrate", "--check"], env=env, cwd=tmp_path, capture_output=True
    )
    subprocess.run([*AMOSYNC, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
    after = subprocess.run(
        [*AMOSYNC, "migrate", "--check"], env=env, cwd=tmp_path, capture_output=True
    )

    assert (1, 0) == (before.returncode, after.returncode)


def test_quick_start_without_configuration(tmp_path: Path) -> None:
    """`amosync serve` with no settings starts on SQLite, stores webhooks, and /health names
    what is missing."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(AMOSYNC_PORT=str(port), AMOSYNC_LOG_FORMAT="json")
    proc = subprocess.Popen(
        [*AMOSYNC, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        stored = httpx.post(
            f"http://127.0.0.1:{port}/amocrm",
            content=b"leads[add][0][id]=42",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        health = httpx.get(f"http://127.0.0.1:{port}/health")
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()

    assert 200 == stored.status_code
    assert (tmp_path / "amosync.db").exists()
    assert 503 == health.status_code
    assert "AMOSYNC_AMOCRM_SUBDOMAIN" in health.json()["checks"]["amocrm_credentials"]["detail"]
    assert "webhook_unprotected" in output


def test_dev_fake_amocrm_serves_seeded_leads() -> None:
    """`amosync dev fake-amocrm` serves the fake API with demo leads carrying a RentProg ID."""
    port = free_port()
    proc = subprocess.Popen(
        [*AMOSYNC, "dev", "fake-amocrm", "--port", str(port), "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v4/account", proc)
        leads = httpx.get(
            f"http://127.0.0.1:{port}/api/v4/leads",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        ).json()["_embedded"]["leads"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)

    values = [
        cf["values"][0]["value"]
        for lead in leads
        for cf in lead["custom_fields_values"]
        if cf["field_id"] == RENTPROG_FIELD_ID
    ]
    assert 3 == len(leads)
    assert ["RP-1001", "RP-1002", "RP-1003"] == sorted(values)
