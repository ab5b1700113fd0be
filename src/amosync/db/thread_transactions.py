"""Whole SQLite write transactions on the process's writer thread, one hand-off from the loop.

Through aiosqlite every statement of a transaction is a hand-off to its thread and back
(BEGIN, each execute, each fetch, COMMIT), and each way back waits for the event loop to get
round to it. Under webhook load the loop is busy, so the worker's claim of 250 events, ~0.4 ms
of SQLite, held the process's write turn (db/turns.py) 3.9 ms at p50; webhook commits waited
for that. Here the same SQLAlchemy statements run on a synchronous engine, the whole
transaction in one call, on the writer thread of the turns (`WriteTurns.run`), so the turn
lasts as long as SQLite's own work and not as long as the loop's delays. Used for the
worker's claims and settles (figures: docs/ARCHITECTURE.md). `run_transaction` does the
same for any write written as one synchronous function (the shared rate limiter, the API
call log), and runs it through the async engine on PostgreSQL.

One per service engine (`thread_transactions`), made on first use and closed with the
engine. Its engine is set up as the service engine (PRAGMAs, BEGIN IMMEDIATE) and leaves
checkpoints to the service engine's checkpointer (db/wal_checkpoint.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.db.engine import create_twin_engine
from amosync.db.turns import WriteTurns, turns_of

T = TypeVar("T")

_BY_ENGINE: weakref.WeakKeyDictionary[Engine, ThreadTransactions] = weakref.WeakKeyDictionary()


class ThreadTransactions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = create_twin_engine(engine)

    @property
    def engine(self) -> Engine:
        """The synchronous twin engine (the SQLite file guard listens on it too)."""
        return self._engine

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """`work(conn)` inside BEGIN IMMEDIATE … COMMIT (ROLLBACK if it raises), on the
        calling thread: hand this to `WriteTurns.run`."""
        with self._engine.begin() as conn:
            return work(conn)

    def close(self) -> None:
        self._engine.dispose()


def thread_transactions(engine: AsyncEngine) -> ThreadTransactions | None:
    """The engine's thread transactions: SQLite files only (None for other engines)."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return None
    found = _BY_ENGINE.get(engine.sync_engine)
    if found is None:
        found = _BY_ENGINE[engine.sync_engine] = ThreadTransactions(engine)
        event.listen(engine.sync_engine, "engine_disposed", _close)
    return found


def _close(sync_engine: Engine) -> None:
    found = _BY_ENGINE.pop(sync_engine, None)
    if found is not None:
        found.close()


async def run_transaction(
    engine: AsyncEngine, work: Callable[[Connection], T], turns: WriteTurns | None = None
) -> T:
    """`work(conn)` as one write transaction in `turns` (the engine's by default): where
    writes take turns (a SQLite file) whole on the writer thread, one hand-off; elsewhere
    through the async engine (`run_sync`)."""
    turns = turns or turns_of(engine)
    threads = thread_transactions(engine) if turns.enabled else None
    if threads is not None:
        return await turns.run(threads.transaction, work)
    async with turns.turn(), engine.begin() as conn:
        return await conn.run_sync(work)
