"""Reads that never block writes: `read_connection(engine)` is how everything reads.

On SQLite every transaction of the service engine begins IMMEDIATE (db/engine.py): a writer
that reads first must not meet SQLITE_BUSY half-way. A read that begins IMMEDIATE takes the
write lock too, though, for as long as it runs: with 400,000 events stored, five browsers
refreshing the status page pushed the webhook ACK to p50 3.1 s, max 11.6 s, while amoCRM
gives up after 2 s. WAL lets any number of readers run beside the one writer, each on the
snapshot it began with, so reads go through a read engine of their own: same file, same
PRAGMAs, but `PRAGMA query_only=1` on every connection (a write there fails at once instead
of taking the lock) and transactions begun DEFERRED (plain BEGIN), which take no lock at all
until they read, and then only a WAL read mark.

On PostgreSQL (and in-memory SQLite, where another engine would see another database) the
service engine itself reads: its transactions take no lock a writer waits for.

One read engine per service engine, made on first use and disposed with it.
"""

from __future__ import annotations

import weakref

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amosync.db.engine import create_read_engine

_BY_ENGINE: weakref.WeakKeyDictionary[Engine, AsyncEngine] = weakref.WeakKeyDictionary()


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine reads of `engine`'s database go through: on a SQLite file, its read
    engine (deferred, query-only); elsewhere `engine` itself."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return engine
    found = _BY_ENGINE.get(engine.sync_engine)
    if found is None:
        found = _BY_ENGINE[engine.sync_engine] = create_read_engine(engine)
        event.listen(engine.sync_engine, "engine_disposed", _dispose)
    return found


def read_connection(engine: AsyncEngine) -> AsyncConnection:
    """`async with read_connection(engine) as conn:` — a connection for reading only, whose
    transaction never holds SQLite's write lock (see the module's docstring)."""
    return read_engine(engine).connect()


def _dispose(sync_engine: Engine) -> None:
    found = _BY_ENGINE.pop(sync_engine, None)
    if found is not None:
        # Called inside AsyncEngine.dispose(), on its greenlet: the sync side may await.
        found.sync_engine.dispose()
