"""Within one process on SQLite, webhook commits and the worker's transactions take turns.

SQLite has one writer at a time. In `serve` the webhook writer and the worker share the
process: while the worker's transaction held the write lock, a webhook commit retried through
growing sleeps (1, 2, 5, 10 … ms, as SQLite's own busy handler does) and often slept past
the moment the lock came free, and the worker slept in SQLite's busy handler behind webhook
commits the same way. An asyncio lock taken around both hands the turn over the moment a
transaction ends. Measured with wrk at 50 connections on SQLite (2-core VM): p99 ACK
27.8–43 → 20.0–20.6 ms, max 45–140 → 28–29 ms.

Other processes (a separate `amosync worker`, CLI commands) still meet at SQLite's own lock
and busy timeout. On PostgreSQL rows are locked one by one, so nothing takes turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

# Where writes take turns, the worker's bulk row updates (claim, settle) run in transactions
# of at most this many rows, so a webhook commit waits for one short transaction, not for
# one over a whole batch: claiming 500 inbox rows takes SQLite ~9 ms (each row is rewritten
# whole, payload included). wrk at 50 connections, 6 alternating rounds: p99 24.7-30.4 ->
# 21.8-26.9 ms at the same req/s. 100 rows cut p99 further but cost 11 % of req/s: each
# transaction through SQLAlchemy and aiosqlite costs ~0.9 ms of CPU.
ROWS_PER_TURN = 250


class WriteTurns:
    def __init__(self, *, enabled: bool) -> None:
        self._lock = asyncio.Lock() if enabled else None
        self.taken = 0  # turns taken so far (also where they are off), for tests and curiosity

    @property
    def rows_per_turn(self) -> int | None:
        """The most rows one of the worker's bulk updates should write in one transaction;
        None where writes do not take turns (no limit)."""
        return ROWS_PER_TURN if self._lock is not None else None

    @classmethod
    def for_dialect(cls, dialect_name: str) -> WriteTurns:
        return cls(enabled=dialect_name == "sqlite")

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the process's write turn (at once where turns are off)."""
        self.taken += 1
        if self._lock is None:
            yield
            return
        async with self._lock:
            yield
