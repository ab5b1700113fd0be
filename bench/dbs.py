"""The databases a run uses: a fresh SQLite file, or a PostgreSQL database of its own.

PostgreSQL: a database named `amosync_bench_<random>` is created through the admin URL and
dropped at the end; the shared `postgres` database is only used to create and drop it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, func, select

from amosync.db.tables import deals, webhook_events
from amosync.db.urls import sync_url

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def database(kind: str, workdir: Path, pg_admin_url: str, label: str) -> Iterator[str]:
    """A new, empty database URL for one serve process (not migrated)."""
    if kind == "sqlite":
        path = workdir / f"{label}-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"amosync_bench_{label}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq(pg_admin_url), autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{pg_admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(_libpq(pg_admin_url), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


class Reader:
    """Read-only queries the scenarios poll while serve runs."""

    def __init__(self, url: str) -> None:
        # A plain engine, not the service's: its SQLite set-up takes the write lock on every
        # transaction (BEGIN IMMEDIATE), and polling must not stall the writer it measures.
        self._engine = create_engine(sync_url(url))

    def close(self) -> None:
        self._engine.dispose()

    def deals(self) -> dict[int, tuple[int | None, int | None, float]]:
        """id → (price, updated_at as epoch seconds, synced_at as epoch seconds)."""
        stmt = select(deals.c.id, deals.c.price, deals.c.updated_at, deals.c.synced_at)
        with self._engine.connect() as conn:
            return {
                row.id: (
                    row.price,
                    int(row.updated_at.timestamp()) if row.updated_at else None,
                    row.synced_at.timestamp(),
                )
                for row in conn.execute(stmt)
            }

    def events_by_status(self) -> dict[str, int]:
        stmt = select(webhook_events.c.status, func.count()).group_by(webhook_events.c.status)
        with self._engine.connect() as conn:
            return dict(conn.execute(stmt).tuples().all())
