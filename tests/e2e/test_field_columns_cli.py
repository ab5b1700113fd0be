"""AMOSYNC_DEAL_FIELD_COLUMNS at start-up, as an operator meets it: `amosync migrate` and
`amosync serve` refuse a bad value with exit 2 and one line naming the setting, on SQLite
and PostgreSQL, and make or drop the view `amocrm_deals_wide` when it is good."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, text

from amosync.db.engine import create_sync_engine
from tests.e2e.test_cli import AMOSYNC, free_port, wait_http
from tests.fresh_pg import fresh_pg_database

SETTING = "AMOSYNC_DEAL_FIELD_COLUMNS"
KNOWN_FIELD = 800002  # a lead field definition the fixture stores (a "select")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database holding one lead field definition, as after a reference refresh."""
    if request.param == "sqlite":
        yield from _prepared(f"sqlite:///{tmp_path / 'amosync.db'}", tmp_path)
    else:
        with fresh_pg_database("amosync_wide") as pg_url:
            yield from _prepared(pg_url, tmp_path)


def _prepared(db_url: str, cwd: Path) -> Iterator[str]:
    migrated = run(cwd, db_url, "migrate")
    assert 0 == migrated.returncode, migrated.stderr
    engine = create_sync_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO amocrm_custom_fields (entity_type, id, name, type, is_deleted, raw, "
                "synced_at) VALUES ('leads', :id, 'Машина', 'select', false, '{}', :at)"
            ),
            {"id": KNOWN_FIELD, "at": "2026-01-01 00:00:00+00:00"},
        )
    engine.dispose()
    yield db_url


def env_for(db_url: str, columns: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(AMOSYNC_DATABASE_URL=db_url, AMOSYNC_LOG_FORMAT="json", **extra)
    if columns is not None:
        env[SETTING] = columns
    return env


def run(
    cwd: Path, db_url: str, command: str, columns: str | None = None
) -> subprocess.CompletedProcess[str]:
    port = str(free_port())
    return subprocess.run(
        [*AMOSYNC, command],
        env=env_for(db_url, columns, AMOSYNC_PORT=port),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_naming_the_setting(result: subprocess.CompletedProcess[str]) -> str:
    assert 2 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if SETTING in line]
    assert 1 == len(lines), result.stderr
    return lines[0]


def view_columns(db_url: str) -> list[str] | None:
    engine = create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            if "amocrm_deals_wide" not in inspect(conn).get_view_names():
                return None
            return [c["name"] for c in inspect(conn).get_columns("amocrm_deals_wide")]
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ("rental_start", "“rental_start” is not alias:field_id"),
        ("Rental:1", "alias “Rental” must be lower-case latin letters"),
        ("select:1", "alias “select” is a reserved SQL word"),
        ("car:1,car:2", "alias “car” is given twice"),
        ("car:1,auto:1", "field 1 is given twice"),
        ("car:x", "field id “x” of “car” is not a positive whole number"),
    ],
)
@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_a_malformed_value_stops_migrate_and_serve(
    tmp_path: Path, command: str, columns: str, problem: str
) -> None:
    """Refused before the database is opened (the same for every command)."""
    result = run(tmp_path, f"sqlite:///{tmp_path / 'amosync.db'}", command, columns)
    line = one_line_naming_the_setting(result)
    assert line.startswith(f"amosync: invalid configuration: {SETTING}: ")
    assert problem in line
    assert not (tmp_path / "amosync.db").exists()


@pytest.mark.parametrize("command", ["migrate", "serve"])
@pytest.mark.parametrize(
    ("columns", "problem"),
    [
        ("ghost:123", "field 123 (“ghost”) is not a deal custom field of this amoCRM account"),
        (f"name:{KNOWN_FIELD}", "alias “name” is already a column of amocrm_deals_named"),
    ],
)
def test_a_wrong_alias_or_field_stops_migrate_and_serve(
    url: str, tmp_path: Path, command: str, columns: str, problem: str
) -> None:
    """Exit 2 and one line, no port bound, the schema unchanged and no view left behind."""
    result = run(tmp_path, url, command, columns)
    line = one_line_naming_the_setting(result)
    assert problem in line
    assert view_columns(url) is None


def test_migrate_makes_the_view_serve_keeps_it_and_unset_drops_it(url: str, tmp_path: Path) -> None:
    made = run(tmp_path, url, "migrate", f"car:{KNOWN_FIELD}")
    assert 0 == made.returncode, made.stderr
    assert "car" == (view_columns(url) or [""])[-1]

    port = str(free_port())
    serve = subprocess.Popen(
        [*AMOSYNC, "serve", "--no-worker"],
        env=env_for(url, f"car:{KNOWN_FIELD},auto_start:{KNOWN_FIELD + 1}", AMOSYNC_PORT=port),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    refused = serve.communicate(timeout=60)[0].decode()
    # An id with no definition, once definitions are stored, stops serve before it binds.
    assert 2 == serve.returncode, refused
    assert "field 800003 (“auto_start”) is not a deal custom field" in refused
    assert "car" == (view_columns(url) or [""])[-1]

    serve = subprocess.Popen(
        [*AMOSYNC, "serve", "--no-worker"],
        env=env_for(url, f"auto:{KNOWN_FIELD}", AMOSYNC_PORT=port),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/live", serve)
        assert 200 == httpx.get(f"http://127.0.0.1:{port}/health/live").status_code
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=20)
    assert "auto" == (view_columns(url) or [""])[-1]

    dropped = run(tmp_path, url, "migrate")
    assert 0 == dropped.returncode, dropped.stderr
    assert view_columns(url) is None
