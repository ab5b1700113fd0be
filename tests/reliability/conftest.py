"""Fixtures for the reliability scenarios: the fake amoCRM on a real port, PostgreSQL only."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from amosync.db.tables import metadata
from amosync.testing import FakeAmoState, run_fake_in_thread


@pytest.fixture
def fake_on_port() -> Iterator[tuple[FakeAmoState, str]]:
    """A fake amoCRM (7 req/s limit on, like the real one) served on a free port."""
    fake = FakeAmoState()
    with run_fake_in_thread(fake) as url:
        yield fake, url


@pytest.fixture
def pg_db_url(pg_url: str) -> str:
    """The run's PostgreSQL database, emptied: for scenarios that only make sense there."""
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY")
    return pg_url
