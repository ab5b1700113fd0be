"""Shared fixtures: a settings factory, SQLite and PostgreSQL databases, the fake amoCRM.

PostgreSQL: one database per test run (`amosync_test_<random>`), migrated once, truncated
between tests and dropped at the end; the shared `postgres`/`test` databases are only used
to create and drop it. `AMOSYNC_TEST_PG_URL` points at another server (an admin URL).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from amosync.db import migrate
from amosync.db.database import Database
from amosync.db.tables import metadata
from amosync.l10n.cli import configure_cli
from amosync.l10n.zone import configure_zone
from amosync.settings import Settings
from amosync.testing import DEFAULT_SUBDOMAIN, DEFAULT_TOKEN, FakeAmoState, create_fake_amocrm

# No per-example deadline for property tests (Hypothesis' default is 200 ms): with the suite
# in 4 processes on 2 cores an example sometimes waited for a core that long (751 ms, then
# 12 ms on the retry), which says nothing about the code. A test about speed asserts it.
hypothesis.settings.register_profile("amosync", deadline=None)
hypothesis.settings.load_profile("amosync")

# Tests start from a clean environment: a developer's AMOSYNC_* variables must not leak in.
for _name in [n for n in os.environ if n.startswith("AMOSYNC_") and n != "AMOSYNC_TEST_PG_URL"]:
    del os.environ[_name]

DATA = Path(__file__).parent / "data"
PG_ADMIN_URL = os.environ.get(
    "AMOSYNC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
FAKE_BASE_URL = f"https://{DEFAULT_SUBDOMAIN}.amocrm.ru"


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of our own for this run, migrated; dropped afterwards."""
    name = f"amosync_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(libpq_url(PG_ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for the test suite ({PG_ADMIN_URL}): {exc}")
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    migrate.upgrade(url)
    yield url
    with psycopg.connect(libpq_url(PG_ADMIN_URL), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "amosync.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def truncate_pg(url: str) -> None:
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: a SQLite file, then the run's PostgreSQL database."""
    if request.param == "sqlite":
        target = tmp_path / "amosync.db"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_url")
    truncate_pg(url)
    return url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    database = Database.open(db_url)
    yield database
    await database.dispose()


@pytest.fixture
def make_settings(db_url: str) -> Callable[..., Settings]:
    """Settings for a test: the test database, the fake account, no `.env` file."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "amocrm_base_url": FAKE_BASE_URL,
            "amocrm_subdomain": DEFAULT_SUBDOMAIN,
            "amocrm_long_lived_token": DEFAULT_TOKEN,
            "webhook_secret": "s3cret-path-0123456789",
            "worker_linger": 0.0,
            "worker_poll_interval": 0.05,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def fake() -> FakeAmoState:
    return FakeAmoState()


@pytest.fixture
def fake_transport(fake: FakeAmoState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_fake_amocrm(fake))


async def count(database: Database, query: str) -> int:
    async with database.read() as conn:
        return int((await conn.execute(text(query))).scalar_one())


@pytest.fixture(autouse=True)
def _english_cli_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI speaks the locale's language (amosync/l10n/cli.py): tests that read English
    output get an English locale whatever the machine's; Russian tests set AMOSYNC_LANG."""
    for name in ("LC_ALL", "LC_MESSAGES", "AMOSYNC_LANG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    configure_cli(None)  # a command run in-process configured these from its settings
    configure_zone(None)
