"""Engines for the service (asyncio) and for migrations (sync), with SQLite made durable."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from amosync.db.file_mode import create_private
from amosync.db.urls import async_url, is_sqlite, sqlite_file, sync_url
from amosync.db.wal_checkpoint import WalCheckpointer

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


# The read engines' `logging_name`: how a log line (or a test) tells their connections apart.
READ_ENGINE_NAME = "read"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def connect_sqlite(path: str, *, create: bool = True) -> sqlite3.Connection:
    """A plain `sqlite3` connection set up as the service engine's are, in autocommit mode
    (the caller says BEGIN IMMEDIATE), usable from any one thread at a time. Without
    `create` a missing file is an error: SQLite would make an empty database in the place
    of one deleted under the service (db/file_guard.py)."""
    target, uri = (path, False) if create else (f"{Path(path).absolute().as_uri()}?mode=rw", True)
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)
    for pragma in _SQLITE_PRAGMAS:
        conn.execute(pragma)
    return conn


def _connect_existing(path: str) -> sqlite3.Connection:
    return connect_sqlite(path, create=False)


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


def _checkpoint_off_the_commit_path(engine: Engine, path: str) -> WalCheckpointer:
    checkpointer = WalCheckpointer(path, _connect_existing)
    _leave_checkpoints_to(checkpointer, engine)
    return checkpointer


def _leave_checkpoints_to(checkpointer: WalCheckpointer, engine: Engine) -> None:
    """`engine`'s connections never checkpoint; each commit wakes `checkpointer` instead."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "commit")
    def _on_commit(_conn: Any) -> None:
        checkpointer.written()


def _ensure_sqlite_dir(url: str) -> None:
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        create_private(path)  # it will hold the OAuth tokens: 0600 from the first byte


def create_service_engine(
    url: str, *, pool_size: int = 5
) -> tuple[AsyncEngine, WalCheckpointer | None]:
    """The asyncio engine the web process and workers share (db/database.py owns it), and
    on a SQLite file the checkpointer its commits leave checkpoints to."""
    _ensure_sqlite_dir(url)
    if is_sqlite(url):
        path = sqlite_file(url)
        engine = create_async_engine(
            async_url(url),
            json_serializer=_json_dumps,
            **({"async_creator": _existing_file_opener(path)} if path is not None else {}),
        )
        _configure_sqlite(engine.sync_engine)
        if path is None:
            return engine, None
        return engine, _checkpoint_off_the_commit_path(engine.sync_engine, str(path))
    pg = create_async_engine(
        async_url(url),
        json_serializer=_json_dumps,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted PostgreSQL must not cost a 503 per stale connection
        pool_timeout=5,
    )
    return pg, None


def create_read_engine(engine: AsyncEngine) -> AsyncEngine:
    """An asyncio engine on a SQLite service engine's file for reads only (`Database.read`):
    its connections are query-only and its transactions begin DEFERRED, so a read never
    takes the write lock and never waits for a writer (WAL)."""
    path = sqlite_file(engine.url.render_as_string(hide_password=False))
    reader = create_async_engine(
        engine.url,
        json_serializer=_json_dumps,
        logging_name=READ_ENGINE_NAME,
        **({"async_creator": _existing_file_opener(path)} if path is not None else {}),
    )

    @event.listens_for(reader.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves, as below
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.execute("PRAGMA query_only=1")  # after journal_mode, which may write
        cursor.close()

    @event.listens_for(reader.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # DEFERRED: no lock until the first read, then only a WAL read mark. One
        # transaction still gives all of a read's statements the same snapshot.
        conn.exec_driver_sql("BEGIN")

    return reader


def create_twin_engine(engine: AsyncEngine, checkpointer: WalCheckpointer | None) -> Engine:
    """A synchronous engine on a SQLite service engine's file, set up as it is (PRAGMAs,
    BEGIN IMMEDIATE) and leaving checkpoints to its checkpointer."""
    url = engine.url.render_as_string(hide_password=False)
    path = sqlite_file(url)
    twin = create_engine(
        sync_url(url),
        json_serializer=_json_dumps,
        **({"creator": lambda: connect_existing(path)} if path is not None else {}),
    )
    _configure_sqlite(twin)
    if checkpointer is not None:
        _leave_checkpoints_to(checkpointer, twin)
    return twin


def _existing_file_opener(path: Path) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    """Open `path` for an asyncio engine without ever creating it (`mode=rw`).

    The file is created once, private, when the engine is made (`_ensure_sqlite_dir`); a
    connection opened later must not make an empty database where a deleted one was: the
    file guard (db/file_guard.py) would then find no trace of the old one, and the next
    start would migrate the empty file silently."""
    uri = f"{path.absolute().as_uri()}?mode=rw"

    async def opener() -> aiosqlite.Connection:
        return await aiosqlite.connect(uri, uri=True, check_same_thread=False)

    return opener


def connect_existing(path: Path) -> sqlite3.Connection:
    """A `sqlite3` connection for a synchronous engine that never creates the file."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, check_same_thread=False)


def create_sync_engine(url: str) -> Engine:
    """A synchronous engine for migrations and one-shot CLI work."""
    _ensure_sqlite_dir(url)
    engine = create_engine(sync_url(url), json_serializer=_json_dumps)
    if is_sqlite(url):
        _configure_sqlite(engine)
    return engine
