"""Within one process on SQLite, every write transaction takes its turn.

SQLite has one writer at a time. In `serve` the webhook writer, the worker, the shared rate
limiter, the API call log, the heartbeat and the rest share the process: while one of them
held the write lock, a webhook commit retried through growing sleeps (1, 2, 5, 10 … ms, as
SQLite's own busy handler does) and often slept past the moment the lock came free, and the
others slept in SQLite's busy handler behind webhook commits the same way. An asyncio lock
taken around every write transaction hands the turn over the moment a transaction ends.
Measured with wrk at 50 connections on SQLite (2-core VM): p99 ACK 27.8–43 → 20.0–20.6 ms,
max 45–140 → 28–29 ms, for the worker's transactions; the rate limiter's and the call log's
(two per API call) then still met webhook commits at SQLite's lock, 259 retries in 10 s.

`write_transaction(engine)` is how code writes: the engine's turn (`turns_of`), then
`engine.begin()`. Other processes (a separate `amosync worker`, CLI commands) still meet at
SQLite's own lock and busy timeout. On PostgreSQL rows are locked one by one, so nothing
takes turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Where writes take turns, the worker's bulk row updates (claim, settle) run in transactions
# of at most this many rows, so a webhook commit waits for one short transaction, not for
# one over a whole batch. wrk at 50 connections, against 500 rows: p99 24.7-30.4 ->
# 21.8-26.9 ms (6 rounds, when a claim still sorted the backlog) and 12.2-13.7 -> 10.1-12.3
# ms (5 rounds, after). 125 rows cut p99 by ~0.9 ms more but cost 4 % of req/s.
ROWS_PER_TURN = 250

# Each service engine's turns, shared by everything in the process that writes through it.
_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()


class WriteTurns:
    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.taken = 0  # turns taken so far (also where they are off), for tests and curiosity

    @property
    def rows_per_turn(self) -> int | None:
        """The most rows one of the worker's bulk updates should write in one transaction;
        None where writes do not take turns (no limit)."""
        return ROWS_PER_TURN if self._enabled else None

    @classmethod
    def for_dialect(cls, dialect_name: str) -> WriteTurns:
        return cls(enabled=dialect_name == "sqlite")

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the process's write turn (at once where turns are off)."""
        self.taken += 1
        if not self._enabled:
            yield
            return
        async with self._lock_of_this_loop():
            yield

    def _lock_of_this_loop(self) -> asyncio.Lock:
        # An asyncio lock belongs to one event loop; a CLI command may run several in turn.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock


def turns_of(engine: AsyncEngine) -> WriteTurns:
    """The turns every writer through `engine` shares (taking turns on SQLite only)."""
    turns = _TURNS.get(engine.sync_engine)
    if turns is None:
        turns = _TURNS[engine.sync_engine] = WriteTurns.for_dialect(engine.dialect.name)
    return turns


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`engine.begin()` in the engine's write turn: how everything in the service writes."""
    async with turns_of(engine).turn(), engine.begin() as conn:
        yield conn
