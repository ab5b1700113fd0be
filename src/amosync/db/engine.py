"""Engines for the service (asyncio) and for migrations (sync), with SQLite made durable."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from amosync.db.urls import async_url, is_sqlite, sqlite_file, sync_url

# WAL lets readers run beside the one writer; synchronous=FULL makes every commit survive
# power loss, which is what "answer 200 only after commit" promises amoCRM.
# How long a SQLite writer waits for another's write lock before giving up (then a webhook
# answers 503 and amoCRM redelivers).
SQLITE_BUSY_TIMEOUT_MS = 15_000
_SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so we can say BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes
        # can fail with SQLITE_BUSY at once instead of waiting out busy_timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def create_service_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """The asyncio engine the web process and workers share."""
    _ensure_sqlite_dir(url)
    if is_sqlite(url):
        engine = create_async_engine(async_url(url), json_serializer=_json_dumps)
        _configure_sqlite(engine.sync_engine)
        return engine
    return create_async_engine(
        async_url(url),
        json_serializer=_json_dumps,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted PostgreSQL must not cost a 503 per stale connection
        pool_timeout=5,
    )


def create_sync_engine(url: str) -> Engine:
    """A synchronous engine for migrations and one-shot CLI work."""
    _ensure_sqlite_dir(url)
    engine = create_engine(sync_url(url), json_serializer=_json_dumps)
    if is_sqlite(url):
        _configure_sqlite(engine)
    return engine
