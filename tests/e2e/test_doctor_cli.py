"""`amosync webhooks` and `amosync doctor` as a user runs them, against the fake on a port."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from amosync.testing import FakeAmoState, rentprog_field, run_fake_in_thread
from tests.e2e.test_cli import AMOSYNC, env_for, free_port, query, wait_http

PUBLIC_URL = "https://sync.example.com"
OUR_URL = f"{PUBLIC_URL}/amocrm/e2e-secret-0123456789"  # env_for's AMOSYNC_WEBHOOK_SECRET


@pytest.fixture
def fake_url() -> Iterator[tuple[FakeAmoState, str]]:
    fake = FakeAmoState()
    with run_fake_in_thread(fake) as url:
        yield fake, url


def amosync(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AMOSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def doctor_json(env: dict[str, str], cwd: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = amosync(["doctor", "--json", *extra], env, cwd)
    return done.returncode, json.loads(done.stdout)


def test_doctor_passes_once_everything_is_set_up(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """register → serve → a test deal's webhook → `doctor --json` exits 0 with no failure."""
    fake, base_url = fake_url
    lead = fake.add_lead(name="Test deal", custom_fields_values=[rentprog_field("RP-1")])
    port = free_port()
    env = env_for(
        db_url,
        base_url,
        AMOSYNC_PORT=str(port),
        AMOSYNC_PUBLIC_URL=PUBLIC_URL,
        AMOSYNC_WORKER_LINGER="0.05",
    )
    registered = amosync(["webhooks", "register"], env, tmp_path)
    proc = subprocess.Popen(
        [*AMOSYNC, "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/amocrm/e2e-secret-0123456789",
            content=f"leads[add][0][id]={lead['id']}&account[subdomain]=testaccount".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if query(db_url, "SELECT id FROM amocrm_deals"):
                break
            time.sleep(0.1)
        code, report = doctor_json(env, tmp_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0].decode()

    assert 0 == registered.returncode, registered.stderr
    assert "e2e-secret-0123456789" not in registered.stdout + registered.stderr
    assert 200 == answer.status_code
    assert (0, True, []) == (code, report["ok"], report["failed"]), report
    assert {"ok"} == {c["status"] for c in report["checks"] if c["name"] != "token_expiry"}
    assert "e2e-secret-0123456789" not in json.dumps(report)
    assert "e2e-secret-0123456789" not in output  # neither in the service's logs


def test_doctor_names_a_missing_then_disabled_webhook(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """No subscription → exit 1 naming `webhook`; disabled by amoCRM → named again, re-enable."""
    fake, base_url = fake_url
    env = env_for(db_url, base_url, AMOSYNC_PUBLIC_URL=PUBLIC_URL)
    nowhere = f"http://127.0.0.1:{free_port()}"

    missing_code, missing = doctor_json(env, tmp_path, "--service-url", nowhere)
    fake.webhooks.subscribe(OUR_URL, ["add_lead", "update_lead"])
    fake.webhooks.disable(OUR_URL)
    disabled_code, disabled = doctor_json(env, tmp_path, "--service-url", nowhere)
    listed = amosync(["webhooks", "list"], env, tmp_path)
    human = amosync(["doctor", "--service-url", nowhere], env, tmp_path)

    checks = {c["name"]: c for c in missing["checks"]}
    assert 1 == missing_code
    assert "webhook" in missing["failed"]
    assert "not subscribed" in checks["webhook"]["detail"]
    assert "run `amosync webhooks register`" == checks["webhook"]["fix"]
    assert 1 == disabled_code
    assert "DISABLED" in {c["name"]: c for c in disabled["checks"]}["webhook"]["detail"]
    assert "DISABLED" in listed.stdout
    assert "← amosync" in listed.stdout
    assert "e2e-secret-0123456789" not in listed.stdout
    assert 1 == human.returncode
    assert "✗ webhook" in human.stdout


def test_register_refuses_plain_http_and_a_foreign_secret(
    sqlite_template: Path, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """http:// on a public host and a URL without our secret are refused with exit code 2."""
    fake, base_url = fake_url
    shutil.copy(sqlite_template, tmp_path / "amosync.db")
    env = env_for(f"sqlite:///{tmp_path}/amosync.db", base_url, AMOSYNC_PUBLIC_URL=PUBLIC_URL)

    http = amosync(
        ["webhooks", "register", "--url", "http://sync.example.com/amocrm/e2e-secret-0123456789"],
        env,
        tmp_path,
    )
    foreign = amosync(
        ["webhooks", "register", "--url", f"{PUBLIC_URL}/amocrm/other"], env, tmp_path
    )
    forced = amosync(
        ["webhooks", "register", "--url", f"{PUBLIC_URL}/amocrm/other", "--force"], env, tmp_path
    )

    assert (2, 2, 0) == (http.returncode, foreign.returncode, forced.returncode)
    assert "HTTPS" in http.stderr
    assert "--force" in foreign.stderr
    assert [f"{PUBLIC_URL}/amocrm/other"] == [h.destination for h in fake.webhooks.all()]
