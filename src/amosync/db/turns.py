"""The write turns: within one process on SQLite, every write transaction takes its turn on
one thread, the process's SQLite writer (on PostgreSQL nothing takes turns).

`Database` (db/database.py) owns one `WriteTurns` and is the only way in: `write()` holds a
turn for a transaction through the async engine (`turn()`), `write_sync()` and the webhook's
SQLite appender hand a whole synchronous transaction to the writer thread (`run()`). Why, and
what it measured: docs/ARCHITECTURE.md, "Storage".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

# Where writes take turns, the worker's bulk row updates (claim, settle) run in transactions
# of at most this many rows (docs/ARCHITECTURE.md, "Storage").
ROWS_PER_TURN = 250

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
