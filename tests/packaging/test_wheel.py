"""The built wheel, installed into a fresh venv with the lock file, is a working amosync.

One wheel and one venv per run (module fixture); then `amosync migrate` and `amosync serve`
from that venv — not from this checkout — against SQLite and a new PostgreSQL database,
with a real webhook body posted and the deal it names synced from the fake amoCRM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from amosync import __version__
from amosync.db.urls import sync_url
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, run_fake_in_thread
from tests.fresh_pg import fresh_pg_database

# One worker for the module under `pytest -n` (scripts/test): each would build its own wheel.
# The first test also builds the wheel and a venv with every dependency (`installed`): more
# than the suite's 120 s when the other workers share the cores; each step has its own bound.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel"), pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "amosync"
FIXTURE = ROOT / "tests" / "data" / "webhook_leads_update_2025_unirock.form"
FIXTURE_LEAD_ID = 30052055  # leads[update][0][id] in that body


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    package_files: frozenset[str]  # the checkout's package files just before the build


def _run(args: list[str | Path]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=240, check=False
    )
    assert 0 == done.returncode, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel, make a venv, install the wheel with the lock file as constraints."""
    work = tmp_path_factory.mktemp("wheel")
    package_files = frozenset(_package_files())
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", work / "dist", ROOT])
    (wheel,) = (work / "dist").glob("amosync-*.whl")
    _run([sys.executable, "-m", "venv", work / "venv"])
    bin_dir = work / "venv" / "bin"
    pip: list[str | Path] = [
        bin_dir / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    _run([*pip, "--constraint", ROOT / "requirements.lock", wheel])
    return Installed(wheel, bin_dir, package_files)


def _package_files() -> set[str]:
    """Every file of the package in this checkout, as a wheel names it (no caches)."""
    return {
        f"amosync/{p.relative_to(PACKAGE).as_posix()}"
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_wheel_holds_every_package_file_including_migrations_and_templates(
    installed: Installed,
) -> None:
    """Code, Alembic migrations and templates, py.typed: nothing of the package is left out."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())

    assert set() == installed.package_files - names
    assert {
        "amosync/db/migrations/env.py",
        "amosync/db/migrations/script.py.mako",
        "amosync/db/migrations/versions/0001_initial_schema.py",
        "amosync/py.typed",
    } <= names
    templates = {n for n in installed.package_files if n.startswith("amosync/web/templates/")}
    assert templates <= names


def test_installed_command_reports_the_source_version(installed: Installed, tmp_path: Path) -> None:
    """`amosync --version` of the installed wheel prints the version in amosync/__init__.py."""
    version = _run([installed.bin / "amosync", "--version"])
    location = _run([installed.bin / "python", "-c", "import amosync; print(amosync.__file__)"])

    assert f"amosync {__version__}" == version.stdout.strip()
    assert location.stdout.startswith(str(installed.bin.parent)), location.stdout


def test_installed_wheel_speaks_russian_from_its_compiled_catalogue(
    installed: Installed, tmp_path: Path
) -> None:
    """The shipped .mo is found from the installed package (not this checkout), and
    zoneinfo finds its zones (tzdata where the machine has none)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AMOSYNC_LANG": "ru",
        "AMOSYNC_TIMEZONE": "Mars/Base",
        "AMOSYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
    }
    done = subprocess.run(
        [installed.bin / "amosync", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == done.returncode
    assert "неизвестный часовой пояс 'Mars/Base'" in done.stderr, done.stderr
    zone = _run(
        [installed.bin / "python", "-c", "import zoneinfo; zoneinfo.ZoneInfo('Europe/Moscow')"]
    )
    assert 0 == zone.returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(db_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that does not exist yet (SQLite) or exists but was never migrated (PG)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'amosync.db'}"
        return
    with fresh_pg_database("amosync_wheel") as url:
        yield url


def _wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_installed_wheel_migrates_serves_and_syncs_a_real_webhook(
    installed: Installed, empty_db_url: str, tmp_path: Path
) -> None:
    """migrate, then serve: the fixture webhook is stored, its deal synced, /health is 200."""
    fake = FakeAmoState()
    fake.add_lead(id=FIXTURE_LEAD_ID, name="TEST MISHA (SORRY)")
    port = _free_port()
    with run_fake_in_thread(fake) as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AMOSYNC_", "PYTHON"))}
        env.update(
            AMOSYNC_DATABASE_URL=empty_db_url,
            AMOSYNC_AMOCRM_BASE_URL=base_url,
            AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
            AMOSYNC_WEBHOOK_SECRET="wheel-secret-0123456789",
            AMOSYNC_PORT=str(port),
            AMOSYNC_WORKER_LINGER="0.05",
        )
        migrate = subprocess.run(
            [installed.bin / "amosync", "migrate"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == migrate.returncode, migrate.stderr
        proc = subprocess.Popen(
            [installed.bin / "amosync", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until(lambda: _answers(f"http://127.0.0.1:{port}/health"), 30, "serve start")
            posted = httpx.post(
                f"http://127.0.0.1:{port}/amocrm/wheel-secret-0123456789",
                content=FIXTURE.read_bytes(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            _wait_until(
                lambda: _query(empty_db_url, "SELECT id FROM amocrm_deals"), 30, "deal sync"
            )
            health = httpx.get(f"http://127.0.0.1:{port}/health")
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=30)[0].decode()

    assert 200 == posted.status_code, output
    assert [("leads", "update", FIXTURE_LEAD_ID)] == _query(
        empty_db_url, "SELECT entity, action, entity_id FROM amocrm_webhook_events"
    )
    assert [(FIXTURE_LEAD_ID, "TEST MISHA (SORRY)")] == _query(
        empty_db_url, "SELECT id, name FROM amocrm_deals"
    )
    assert 200 == health.status_code, health.text
    assert DEFAULT_TOKEN not in output


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.TransportError:
        return False
    return True
