"""deploy/compose.yaml's amosync services run as plain processes: the next best proof of the
compose stack on machines without a Docker engine. The image is never built and no container
runs here; what is checked is everything compose.yaml and the Dockerfile decide.

Taken from the files, not restated here:
- each service's `command:`, given to `python -m amosync` from this venv (the image's
  ENTRYPOINT is `amosync`, the same program installed from this checkout);
- each service's environment: the Dockerfile's final-stage ENV, overlaid by the service's
  `environment:` block, interpolated from a test `.env` mapping the way compose does
  (`${X:-default}`, `${X:?message}`; the test runner's own environment is not consulted);
- the order: `migrate` must exit 0 before `web` and `worker` start;
- the web port: the `ports:` mapping's container port must be the image's AMOSYNC_PORT;
- the health check: the Dockerfile's HEALTHCHECK command, run as written with the web's env.

Rewritten, and only this: AMOSYNC_DATABASE_URL's host `db:5432` becomes the local test
server and its credentials and database name those of a fresh database for this run (after
checking they match the `db` service's); the web process listens where compose publishes
the port (the mapping's host address and AMOSYNC_HTTP_PORT, a free port) instead of on the
container's 0.0.0.0:3000; PATH's /opt/amosync/bin is this venv's bin; HOME and the working
directory are an empty temporary folder, as the image's WORKDIR holds no `.env`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from amosync.db.migrate import head_revision
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, run_fake_in_thread
from tests.fresh_pg import fresh_pg_database
from tests.packaging.compose_file import (
    Image,
    InterpolationError,
    check_runnable,
    interpolate,
    load_compose,
    load_dockerfile,
    service_environment,
)
from tests.reliability.harness import AMOSYNC, DATA, Proc, free_port, query, wait_drained

pytestmark = pytest.mark.slow

WEBHOOK = DATA / "webhook_leads_update_2025_unirock.form"
WEBHOOK_LEAD_ID = 30052055  # leads[update][0][id] in that body
SECRET = "compose-webhook-secret"
VENV_BIN = str(Path(sys.executable).parent)


@dataclass
class Stack:
    """The compose file resolved for one run, and where its processes run."""

    services: dict[str, Any]
    image: Image
    db_url: str  # the fresh local database standing in for the `db` service
    workdir: Path
    fake: FakeAmoState

    def env(self, service: str) -> dict[str, str]:
        """The environment compose would give `service`'s container, with the rewrites above."""
        check_runnable(self.services[service])
        env = dict(self.image.env)
        env.update(service_environment(self.services[service]))
        env["PATH"] = (
            env["PATH"].replace("/opt/amosync/bin", VENV_BIN).replace("$PATH", os.environ["PATH"])
        )
        env["HOME"] = str(self.workdir)
        env["AMOSYNC_DATABASE_URL"] = self._local_database(env["AMOSYNC_DATABASE_URL"])
        if "ports" in self.services[service]:
            env["AMOSYNC_HOST"], env["AMOSYNC_PORT"] = self._published(env)
        return env

    def command(self, service: str) -> list[str]:
        command = self.services[service]["command"]
        assert isinstance(command, list), "exec form, as the image's ENTRYPOINT expects"
        return [str(arg) for arg in command]

    def proc(self, service: str) -> Proc:
        env = self.env(service)
        port = int(env["AMOSYNC_PORT"]) if "ports" in self.services[service] else None
        log = self.workdir / f"{service}.log"
        return Proc(service, self.command(service), env, log, port, cwd=self.workdir)

    def run(self, service: str) -> subprocess.CompletedProcess[str]:
        """A one-shot service (compose `restart: "no"`), to completion."""
        return subprocess.run(
            [*AMOSYNC, *self.command(service)],
            env=self.env(service),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def _local_database(self, compose_url: str) -> str:
        url, db = make_url(compose_url), service_environment(self.services["db"])
        # The amosync services must reach the `db` service with the role, password and
        # database it creates; only then is the address swapped for the local server's.
        assert ("db", 5432) == (url.host, url.port)
        assert (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]) == (
            url.username,
            url.password,
            url.database,
        )
        local = make_url(self.db_url)
        return url.set(
            username=local.username,
            password=local.password,
            host=local.host,
            port=local.port,
            database=local.database,
        ).render_as_string(hide_password=False)

    def _published(self, env: dict[str, str]) -> tuple[str, str]:
        (mapping,) = self.services["web"]["ports"]
        host_ip, host_port, container_port = str(mapping).split(":")
        # A container must listen beyond its own loopback for the published port to reach it.
        assert "0.0.0.0" == env["AMOSYNC_HOST"]  # noqa: S104 - read from the Dockerfile, not bound
        assert container_port == env["AMOSYNC_PORT"], "compose publishes the port serve uses"
        return host_ip, host_port


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    fake = FakeAmoState()
    fake.add_lead(id=WEBHOOK_LEAD_ID, name="TEST MISHA (SORRY)")
    with fresh_pg_database("amosync_compose") as db_url, run_fake_in_thread(fake) as fake_url:
        dotenv = {  # what an operator's deploy/.env holds; the rest keeps compose's defaults
            "POSTGRES_PASSWORD": "compose-db-password",
            "AMOSYNC_WEBHOOK_SECRET": SECRET,
            "AMOSYNC_AMOCRM_BASE_URL": fake_url,
            "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN": DEFAULT_TOKEN,
            "AMOSYNC_HTTP_PORT": str(free_port()),
        }
        yield Stack(load_compose(dotenv)["services"], load_dockerfile(), db_url, tmp_path, fake)


def test_compose_services_as_processes_migrate_then_serve_and_work(stack: Stack) -> None:
    """migrate exits 0; then `serve --no-worker` stores a real webhook, the separate worker
    syncs its deal, and the Dockerfile's HEALTHCHECK passes (and fails once the worker stops)."""
    assert ["amosync"] == stack.image.entrypoint
    migrated = stack.run("migrate")
    assert 0 == migrated.returncode, migrated.stdout + migrated.stderr
    assert f"is at schema {head_revision()}" in migrated.stdout

    web, worker = stack.proc("web"), stack.proc("worker")
    try:
        web.start()
        worker.start()
        posted = httpx.post(
            f"{web.url}/amocrm/{SECRET}",
            content=WEBHOOK.read_bytes(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert 200 == posted.status_code, web.output()
        wait_drained(stack.db_url, timeout=30)
        health = _wait_for_health(web.url, 200, timeout=30)
        healthy = _healthcheck(stack)
        assert 0 == worker.terminate()
        unhealthy = _healthcheck(stack)
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert web.terminate() in (0, -signal.SIGTERM)
    finally:
        web.terminate()
        worker.terminate()

    assert [("leads", "update", WEBHOOK_LEAD_ID, "done")] == query(
        stack.db_url, "SELECT entity, action, entity_id, status FROM amocrm_webhook_events"
    )
    assert [(WEBHOOK_LEAD_ID, "TEST MISHA (SORRY)")] == query(
        stack.db_url, "SELECT id, name FROM amocrm_deals"
    )
    worker_check = health["checks"]["worker"]
    assert ("ok", "1 alive") == (worker_check["state"], worker_check["detail"]), health
    assert 0 == healthy.returncode, healthy.stderr
    assert 0 != unhealthy.returncode, "HEALTHCHECK must fail once no worker is running"
    assert "503" in unhealthy.stderr
    logs = web.output() + worker.output()
    assert DEFAULT_TOKEN not in logs
    assert "compose-db-password" not in logs


@pytest.mark.parametrize("service", ["web", "worker"])
def test_compose_services_refuse_an_unmigrated_database(stack: Stack, service: str) -> None:
    """Why compose waits for `migrate`: started first, web and worker exit 1 and say what to do."""
    proc = stack.proc(service)
    proc.port = None  # it must not come up, so do not wait for it to answer
    proc.start()
    assert proc.popen is not None
    code = proc.popen.wait(timeout=30)

    assert 1 == code, proc.output()
    assert "has no schema yet; run `amosync migrate` first" in proc.output()
    assert "compose-db-password" not in proc.output()
    assert [(0,)] == query(
        stack.db_url,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )


def test_interpolation_follows_compose_rules() -> None:
    """The helper the stack test relies on: defaults, required values, escapes, and refusals."""
    env = {"SET": "x", "EMPTY": ""}

    assert "x|d|d|" == interpolate("${SET:-d}|${UNSET:-d}|${EMPTY:-d}|${EMPTY-d}", env)
    assert "x|x|a|" == interpolate("$SET|${SET}|${SET:+a}|${EMPTY:+a}", env)
    assert "$SET" == interpolate("$$SET", env)
    with pytest.raises(InterpolationError, match="UNSET is missing a value: set it"):
        interpolate("${UNSET:?set it}", env)
    with pytest.raises(InterpolationError, match="EMPTY"):
        interpolate("${EMPTY:?set it}", env)
    assert "" == interpolate("${EMPTY?set it}", env)
    for unsupported in ("${UNSET:-${SET}}", "${SET", "$", "${1}"):
        with pytest.raises(InterpolationError):
            interpolate(unsupported, env)


def test_compose_refuses_to_start_without_the_required_secrets() -> None:
    """compose.yaml itself demands the database password and the webhook secret."""
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        load_compose({"AMOSYNC_WEBHOOK_SECRET": "s"})
    with pytest.raises(InterpolationError, match="AMOSYNC_WEBHOOK_SECRET"):
        load_compose({"POSTGRES_PASSWORD": "p"})


def _wait_for_health(url: str, status: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/health", timeout=5)
        if answer.status_code == status or time.monotonic() > deadline:
            assert status == answer.status_code, answer.text
            body: dict[str, Any] = answer.json()
            return body
        time.sleep(0.2)


def _healthcheck(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's HEALTHCHECK CMD, as written, in the web container's environment."""
    return subprocess.run(
        stack.image.healthcheck,
        env=stack.env("web"),
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
