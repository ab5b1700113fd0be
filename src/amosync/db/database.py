"""The database, as one object: every module reads with `read()` and writes with `write()`.

Built once per process in the composition root (`Database.open(url)`), it owns the service
engine and, on a SQLite file, the read engine, the write turns (db/turns.py), the thread
transactions (db/thread_transactions.py) and the WAL checkpointer (db/wal_checkpoint.py).
Why SQLite needs all that: docs/ARCHITECTURE.md, "Writing to SQLite".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import URL, Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amosync.db.clock import database_now, known_now
from amosync.db.engine import create_read_engine, create_service_engine
from amosync.db.thread_transactions import ThreadTransactions
from amosync.db.turns import WriteTurns
from amosync.db.wal_checkpoint import WalCheckpointer

T = TypeVar("T")


class Database:
    """One database for the whole process: `read()`, `write()` and little else."""

    def __init__(self, engine: AsyncEngine, checkpointer: WalCheckpointer | None = None) -> None:
        """Use `Database.open`; this takes over `engine` (made by `create_service_engine`,
        with its `checkpointer`) and disposes of it in `dispose()`."""
        self._engine = engine
        self._checkpointer = checkpointer
        self._turns = WriteTurns.for_dialect(engine.dialect.name)
        on_file = engine.dialect.name == "sqlite" and bool(engine.url.database)
        # On PostgreSQL (and in-memory SQLite, where another engine would see another
        # database) the service engine itself reads and writes whole transactions.
        self._reader = create_read_engine(engine) if on_file else engine
        self._threads = ThreadTransactions(engine, checkpointer) if on_file else None

    @classmethod
    def open(cls, url: str, *, pool_size: int = 5) -> Database:
        """The database at `url` (a SQLite file is created, private, if missing). Nothing
        connects until the first read or write."""
        return cls(*create_service_engine(url, pool_size=pool_size))

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    @property
    def sql_dialect(self) -> Dialect:
        """SQLAlchemy's dialect, for code that compiles statements itself (the webhook
        appenders)."""
        return self._engine.dialect

    @property
    def url(self) -> URL:
        """The database's URL (the webhook appenders open connections of their own)."""
        return self._engine.url

    def read(self) -> AsyncConnection:
        """`async with db.read() as conn:` — a connection for reading only; its statements
        share one transaction (one snapshot). On a SQLite file the transaction begins
        DEFERRED and the connection is query-only: it never takes the write lock, so it
        never blocks a writer (a write through it fails at once)."""
        return self._reader.connect()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """`async with db.write() as conn:` — a write transaction, committed at the end
        (rolled back if the block raises). On SQLite it takes the process's write turn
        first and begins IMMEDIATE; on PostgreSQL it is a plain transaction. Never nest
        one inside another: on SQLite the inner one would wait for the outer's turn."""
        async with self._turns.turn(), self._engine.begin() as conn:
            yield conn

    async def write_sync(self, work: Callable[[Connection], T]) -> T:
        """`work(conn)` as one write transaction, as `write()` does it but for work written
        as one synchronous function: on a SQLite file it runs whole on the writer thread,
        one hand-off from the event loop (the worker's claims and settles, the shared rate
        limiter, the API call log); elsewhere through the async engine."""
        if self._threads is not None and self._turns.enabled:
            return await self._turns.run(self._threads.transaction, work)
        async with self._turns.turn(), self._engine.begin() as conn:
            return await conn.run_sync(work)

    @property
    def turns(self) -> WriteTurns:
        """The process's write turns: for the webhook's SQLite appender, which commits on
        the writer thread itself, and for `rows_per_turn`."""
        return self._turns

    @property
    def checkpointer(self) -> WalCheckpointer | None:
        """The WAL checkpointer of a SQLite file, for connections of one's own that write
        to it (the webhook appender); None elsewhere, where SQLite or PostgreSQL checkpoint."""
        return self._checkpointer

    def sync_engines(self) -> tuple[Engine, ...]:
        """Every engine with connections to the database (service, writer thread's, read):
        the SQLite file guard listens on them all."""
        engines: tuple[Engine, ...] = (self._engine.sync_engine,)
        if self._threads is not None:
            engines = (*engines, self._threads.engine)
        if self._reader is not self._engine:
            engines = (*engines, self._reader.sync_engine)
        return engines

    async def now(self) -> datetime:
        """The database clock's current time (aware UTC): several hosts may write one
        PostgreSQL database, and its clock is the one they share (db/clock.py). A connection
        is taken only to measure the offset, once a minute; on SQLite it is our clock."""
        now = known_now(self._engine.sync_engine)
        if now is not None:
            return now
        async with self.read() as conn:  # on PostgreSQL the service engine itself
            return await database_now(conn)

    async def dispose(self) -> None:
        """Close every connection, engine and thread; the object is not used afterwards."""
        if self._reader is not self._engine:
            await self._reader.dispose()
        self._turns.close()  # after the queued transactions
        if self._threads is not None:
            self._threads.close()
        await self._engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.close()
