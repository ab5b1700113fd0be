"""Client-side limit on calls to amoCRM: never more than N requests in any one second.

amoCRM counts requests in a sliding second and answers 429 (and, when it keeps happening,
blocks the IP with 403) above 7 per second. A sliding-window log is exact where a token
bucket would allow a burst at a window edge.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from amosync import metrics
from amosync.core.backoff import MAX_RETRY_AFTER, clamp_pause
from amosync.errors import IPBlocked, RateLimited

Slot = str
"""Names one granted request, so the limiter can learn when it was answered."""

# A request not reported done counts as "arriving now" for at most this long (a process killed
# mid-request never reports; a request still in flight may arrive at amoCRM at any moment).
IN_FLIGHT_CAP = 15.0


class RateLimiter(Protocol):
    async def acquire(self) -> Slot:
        """Wait until one more request may start now."""

    async def done(self, slot: Slot) -> None:
        """The request of `slot` got its answer (or failed): it can no longer arrive later."""

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (after a 429 with `retry_after`)."""

    def block(self, seconds: float) -> None:
        """amoCRM blocked us (403): `acquire` raises IPBlocked for `seconds`."""


def effective_time(reserved: float, finished: float | None, now: float) -> float:
    """When a request may have reached amoCRM, at the latest.

    amoCRM counts a request when it arrives, somewhere between our grant and its answer, and
    the gap is not bounded (a cold connection, a busy event loop, the network). Counting each
    request at its answer time (or "now" while it is in flight) keeps any rate+1 arrivals
    more than a window apart whatever that gap is; `margin` only covers clock jitter.
    """
    if finished is not None:
        return finished
    return min(max(reserved, now), reserved + IN_FLIGHT_CAP)


def wait_for_slot(times: list[float], capacity: int, window: float, now: float) -> float:
    """Seconds until one more request fits: the capacity-th latest must leave the window."""
    if len(times) < capacity:
        return 0.0
    return sorted(times)[-capacity] + window - now


class SlidingWindowLimiter:
    """In-process limiter shared by every request of one process (see SharedWindowLimiter for
    several processes).

    `margin` widens the window a little so that clock jitter between our measurement and
    amoCRM's cannot put rate+1 requests into one of its seconds. A pause lasts at most
    `max_pause`; with `max_wait`, `acquire` raises RateLimited rather than wait longer.
    """

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        max_pause: float = MAX_RETRY_AFTER,
        max_wait: float | None = None,
    ) -> None:
        self._max_pause = max_pause
        self._max_wait = max_wait
        self._capacity = max(1, math.floor(rate * window))
        self._window = window + margin
        self._clock = clock
        # slot -> (granted, answered or None)
        self._slots: dict[Slot, tuple[float, float | None]] = {}
        self._paused_until = 0.0
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> Slot:
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = self._clock()
                if self._blocked_until > now:
                    left = self._blocked_until - now
                    raise IPBlocked(f"amoCRM blocked this IP (403); {left:.0f} s left", delay=left)
                times = self._recent(now)
                wait = max(
                    self._paused_until - now,
                    wait_for_slot(times, self._capacity, self._window, now),
                )
                if wait <= 0:
                    slot = uuid.uuid4().hex[:16]
                    self._slots[slot] = (now, None)
                    return slot
                if self._max_wait is not None and wait > self._max_wait:
                    raise RateLimited(
                        f"calls to amoCRM are paused for {wait:.0f} s more (429)", delay=wait
                    )
                metrics.rate_limit_wait(wait)
                await asyncio.sleep(wait)

    async def done(self, slot: Slot) -> None:
        granted = self._slots.get(slot)
        if granted is not None:
            self._slots[slot] = (granted[0], self._clock())

    def _recent(self, now: float) -> list[float]:
        """Effective times of requests still inside the window; forgets the older ones."""
        times = {s: effective_time(g, f, now) for s, (g, f) in self._slots.items()}
        for slot, at in times.items():
            if now - at >= self._window:
                del self._slots[slot]
        return [at for at in times.values() if now - at < self._window]

    def pause(self, seconds: float) -> None:
        pause = clamp_pause(seconds, self._max_pause)
        self._paused_until = max(self._paused_until, self._clock() + pause)

    def block(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)
