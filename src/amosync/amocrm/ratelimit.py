"""Client-side limit on calls to amoCRM: never more than N requests in any one second.

amoCRM counts requests in a sliding second and answers 429 (and, when it keeps happening,
blocks the IP with 403) above 7 per second. A sliding-window log is exact where a token
bucket would allow a burst at a window edge.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
    async def acquire(self) -> None:
        """Wait until one more request may start now."""

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (after a 429 with `retry_after`)."""


class SlidingWindowLimiter:
    """In-process limiter shared by every request of one process.

    `margin` widens the window a little so that network jitter between our send time and
    amoCRM's arrival time cannot put rate+1 requests into one of its seconds.
    """

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = max(1, math.floor(rate * window))
        self._window = window + margin
        self._clock = clock
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= self._window:
                    self._sent.popleft()
                wait = self._paused_until - now
                if len(self._sent) >= self._capacity:
                    wait = max(wait, self._sent[0] + self._window - now)
                if wait <= 0:
                    self._sent.append(now)
                    return
                await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)
