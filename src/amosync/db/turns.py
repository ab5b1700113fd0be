"""Within one process on SQLite, every write transaction takes its turn on one thread.

SQLite has one writer at a time. In `serve` the webhook writer, the worker, the shared rate
limiter, the API call log, the heartbeat and the rest share the process: while one of them
held the write lock, a webhook commit retried through growing sleeps (1, 2, 5, 10 … ms, as
SQLite's own busy handler does) and often slept past the moment the lock came free, and the
others slept in SQLite's busy handler behind webhook commits the same way. Taking turns
instead, a commit starts the moment the lock is free, so the tail of the webhook ACK is set
by the transactions ahead of it, not by sleeps (figures: docs/ARCHITECTURE.md, "Writing to
SQLite").

The turns are the queue of one thread, the process's SQLite writer:

- `run(work)` hands a whole synchronous transaction to it (the webhook commits,
  inbox/sqlite_append.py; the worker's claims and settles, db/thread_transactions.py). One
  starts the moment the one before it ends, on that thread. When the turns were an asyncio
  lock, the next transaction started only after the event loop had noticed the end of the
  last one, and under load the loop is busy: a 1 ms claim held the turn ~8 ms. A thread's
  queue does not wait for the loop.
- `turn()` is for transactions that run through the async engine, a statement at a time: it
  occupies the writer thread (a job that waits until the transaction ends), so nothing
  queued behind it starts meanwhile. `write_transaction(engine)` is `engine.begin()` in a
  turn, how code writes.

Other processes (a separate `amosync worker`, CLI commands) still meet at SQLite's own lock
and busy timeout. On PostgreSQL rows are locked one by one, so nothing takes turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Where writes take turns, the worker's bulk row updates (claim, settle) run in transactions
# of at most this many rows, so a webhook commit waits for one short transaction, not for
# one over a whole batch. 250 is where shorter transactions stopped paying: fewer rows cut
# the ACK's tail a little more but cost throughput (docs/ARCHITECTURE.md).
ROWS_PER_TURN = 250

# Each service engine's turns, shared by everything in the process that writes through it.
_TURNS: weakref.WeakKeyDictionary[Engine, WriteTurns] = weakref.WeakKeyDictionary()

T = TypeVar("T")


class WriteTurns:
    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._executor: ThreadPoolExecutor | None = None
        self._queued = 0  # jobs handed to the writer thread and not finished (or cancelled)
        self._queued_lock = threading.Lock()  # counted down on the writer thread
        self.taken = 0  # turns taken so far (also where they are off), for tests and curiosity

    @property
    def enabled(self) -> bool:
        """Whether writes take turns here (a SQLite file)."""
        return self._enabled

    @property
    def rows_per_turn(self) -> int | None:
        """The most rows one of the worker's bulk updates should write in one transaction;
        None where writes do not take turns (no limit)."""
        return ROWS_PER_TURN if self._enabled else None

    @classmethod
    def for_dialect(cls, dialect_name: str) -> WriteTurns:
        return cls(enabled=dialect_name == "sqlite")

    def idle(self) -> bool:
        """Nothing runs or waits on the writer thread. Only the event loop's thread hands
        work over, so until it does, a transaction it runs itself runs alone."""
        return self._queued == 0

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on the writer thread, after everything handed over before it; its
        result, or its exception, comes back. (Where turns are off, on a thread all the same:
        the caller wanted the work off the event loop.)"""
        self.taken += 1
        return await asyncio.wrap_future(self._submit(work, *args))

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the process's write turn (at once where turns are off)."""
        self.taken += 1
        if not self._enabled:
            yield
            return
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        release = threading.Event()

        def hold() -> None:
            try:
                loop.call_soon_threadsafe(_resolve, started)
            except RuntimeError:  # the loop is closed: nobody is waiting for this turn
                return
            release.wait()

        self._submit(hold)
        try:
            await started
            yield
        finally:
            release.set()  # also when cancelled while waiting: `hold` then returns at once

    def close(self) -> None:
        """Stop the writer thread once its queue is done (a later `run` starts a new one)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        with self._queued_lock:
            self._queued += 1
        future = self._executor.submit(work, *args)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future[Any]) -> None:
        with self._queued_lock:
            self._queued -= 1


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile
        future.set_result(None)


def turns_of(engine: AsyncEngine) -> WriteTurns:
    """The turns every writer through `engine` shares (taking turns on SQLite only)."""
    turns = _TURNS.get(engine.sync_engine)
    if turns is None:
        turns = _TURNS[engine.sync_engine] = WriteTurns.for_dialect(engine.dialect.name)
        event.listen(engine.sync_engine, "engine_disposed", lambda _engine: turns.close())
    return turns


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`engine.begin()` in the engine's write turn: how everything in the service writes."""
    async with turns_of(engine).turn(), engine.begin() as conn:
        yield conn
