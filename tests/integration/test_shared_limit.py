"""The database-backed rate limiter: several limiters (one per process) share one window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.amocrm.shared_limit import SharedWindowLimiter
from amosync.db.engine import create_service_engine
from amosync.errors import IPBlocked


@pytest.fixture
async def engines(db_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Three engines on one database, as three processes would have."""
    made = [create_service_engine(db_url) for _ in range(3)]
    yield made
    for engine in made:
        await engine.dispose()


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = first = 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


async def test_three_limiters_together_stay_under_the_rate(engines: list[AsyncEngine]) -> None:
    """Three limiters at 7/s each, hammering at once, let at most 7 through in any second."""
    limiters = [SharedWindowLimiter(engine, 7) for engine in engines]
    granted: list[float] = []

    async def hammer(limiter: SharedWindowLimiter) -> None:
        for _ in range(6):
            slot = await limiter.acquire()
            granted.append(time.monotonic())
            await limiter.done(slot)

    started = time.monotonic()
    await asyncio.gather(*(hammer(limiter) for limiter in limiters))
    assert 18 == len(granted)
    assert 7 == most_in_any_window(granted)
    # 18 sends at 7 per (1 s + margin) need two full windows, and not much more.
    assert 2.0 <= time.monotonic() - started < 4.0


async def test_a_429_pause_holds_back_the_other_processes(engines: list[AsyncEngine]) -> None:
    """After one limiter is paused for 0.6 s, another one waits that long before sending."""
    first, second = (SharedWindowLimiter(engine, 7) for engine in engines[:2])
    await first.done(await first.acquire())
    first.pause(0.6)
    await first.aclose()  # the pause is written
    started = time.monotonic()
    await second.acquire()
    assert 0.5 <= time.monotonic() - started < 1.5


async def test_a_403_block_stops_the_other_processes(engines: list[AsyncEngine]) -> None:
    """After one limiter records a 403 block, another one refuses with the time left."""
    first, second = (SharedWindowLimiter(engine, 7) for engine in engines[:2])
    first.block(30.0)
    await first.aclose()
    with pytest.raises(IPBlocked) as raised:
        await second.acquire()
    assert raised.value.delay is not None
    assert 25.0 < raised.value.delay <= 30.0


async def test_a_request_still_in_flight_keeps_its_slot(engines: list[AsyncEngine]) -> None:
    """Requests not yet answered count as arriving now: the 8th waits a window after them."""
    first, second = (SharedWindowLimiter(engine, 7) for engine in engines[:2])
    slots = [await first.acquire() for _ in range(7)]
    await asyncio.sleep(0.5)  # all seven still "in flight", half a second after they began
    # Counted from the first answer: on a busy machine the seven `done` transactions take
    # a while, and the window rightly frees up one window after the earliest of them.
    answering = time.monotonic()
    for slot in slots:
        await first.done(slot)
    await second.acquire()
    assert time.monotonic() - answering >= 1.0
