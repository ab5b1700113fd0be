"""The database, as one object: every module reads with `read()` and writes with `write()`.

Built once per process in the composition root (`Database.open(url)`), it owns the service
engine and, on a SQLite file, the read engine, the write turns, the thread transactions and
the WAL checkpointer. Why SQLite needs all that: docs/ARCHITECTURE.md, "Storage".
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from sqlalchemy import URL, Connection, Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amosync.db.clock import database_now
from amosync.db.engine import create_service_engine, wal_checkpointer
from amosync.db.reads import read_engine
from amosync.db.thread_transactions import run_transaction, thread_transactions
from amosync.db.turns import WriteTurns, turns_of
from amosync.db.wal_checkpoint import WalCheckpointer

T = TypeVar("T")


class Database:
    """One database for the whole process: `read()`, `write()` and little else."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._turns = turns_of(engine)
        self._reader = read_engine(engine)

    @classmethod
    def open(cls, url: str, *, pool_size: int = 5) -> Database:
        """The database at `url` (a SQLite file is created, private, if missing)."""
        return cls(create_service_engine(url, pool_size=pool_size))

    @property
    def engine(self) -> AsyncEngine:
        """Transitional: the service engine, for modules not yet given the Database."""
        return self._engine

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return self._engine.dialect.name

    @property
    def sql_dialect(self) -> Dialect:
        """SQLAlchemy's dialect, for code compiling statements itself (the webhook
        appenders)."""
        return self._engine.dialect

    @property
    def url(self) -> URL:
        return self._engine.url

    def read(self) -> AsyncConnection:
        """`async with db.read() as conn:` — a connection for reading only. On a SQLite file
        its transaction begins DEFERRED and is query-only: it never takes the write lock, so
        it never blocks a writer."""
        return self._reader.connect()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """`async with db.write() as conn:` — a write transaction, committed at the end
        (rolled back if the block raises). On SQLite it first takes the process's write turn."""
        async with self._turns.turn(), self._engine.begin() as conn:
            yield conn

    async def write_sync(self, work: Callable[[Connection], T]) -> T:
        """`work(conn)` as one write transaction, like `write()` but for work written as
        one synchronous function: on a SQLite file it runs whole on the writer thread, one
        hand-off from the event loop (the worker's claims and settles, the rate limiter,
        the API call log)."""
        return await run_transaction(self._engine, work, self._turns)

    @property
    def turns(self) -> WriteTurns:
        """The process's write turns (on SQLite taken, elsewhere at once): for the webhook
        appender, which commits on the writer thread itself, and for `rows_per_turn`."""
        return self._turns

    @property
    def checkpointer(self) -> WalCheckpointer | None:
        """The WAL checkpointer of a SQLite file (the webhook appender wakes it too)."""
        return wal_checkpointer(self._engine)

    def file_engines(self) -> tuple[Engine, ...]:
        """Every engine with connections to the database (service, twin, read): the SQLite
        file guard listens on them all."""
        engines: tuple[Engine, ...] = (self._engine.sync_engine,)
        twin = thread_transactions(self._engine)
        if twin is not None:
            engines = (*engines, twin.engine)
        if self._reader is not self._engine:
            engines = (*engines, self._reader.sync_engine)
        return engines

    async def now(self) -> datetime:
        """The database clock's current time (aware UTC): PostgreSQL's, measured once a
        minute; on SQLite this host's."""
        return await database_now(self._engine)

    async def dispose(self) -> None:
        """Close every connection, thread and engine (the turns' thread ends too)."""
        await self._engine.dispose()
