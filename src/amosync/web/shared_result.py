"""One computation shared by every caller for a moment: what the status page shows.

Each browser on the status page fetches its live block every 10 s (a wall screen every
second), and each fetch read the database a dozen times (health checks, counts, the chart,
the latest events): with five browsers the page's reads and their Python took a fifth of
the process's event loop, the loop webhook ACKs wait for. Computed at most once per
`max_age` seconds and shared, the cost is per second, not per browser. Callers arriving
while it is being computed wait for that computation instead of starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SharedResult(Generic[T]):
    def __init__(self, max_age: float) -> None:
        self._max_age = max_age
        self._done: dict[str, tuple[float, T]] = {}  # key -> (time.monotonic(), value)
        self._running: dict[str, asyncio.Future[T]] = {}

    async def get(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        done = self._done.get(key)
        if done is not None and time.monotonic() - done[0] < self._max_age:
            return done[1]
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)  # a caller going away must not cancel it
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            self._done[key] = (time.monotonic(), value)
            future.set_result(value)
            return value
        finally:
            del self._running[key]

    def forget(self) -> None:
        """Compute afresh next time (after a change the next page must show)."""
        self._done.clear()
