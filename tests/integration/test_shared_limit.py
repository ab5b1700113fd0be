"""The database-backed rate limiter: several limiters (one per process) share one window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from amosync.amocrm import AmoClient, LongLivedToken
from amosync.amocrm.shared_limit import DEFAULT_KEY, ReleaseAndRecord, SharedWindowLimiter
from amosync.db.api_log import DbCallRecorder
from amosync.db.database import Database
from amosync.db.tables import api_requests, sync_state
from amosync.errors import IPBlocked
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import DEFAULT_TOKEN, FakeAmoState


@pytest.fixture
async def databases(db_url: str) -> AsyncIterator[list[Database]]:
    """Three engines on one database, as three processes would have."""
    made = [Database.open(db_url) for _ in range(3)]
    yield made
    for database in made:
        await database.dispose()


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = first = 0
    for last, at in enumerate(times):
        while at - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


async def test_three_limiters_together_stay_under_the_rate(databases: list[Database]) -> None:
    """Three limiters at 7/s each, hammering at once, let at most 7 through in any second."""
    limiters = [SharedWindowLimiter(database, 7) for database in databases]
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


async def test_a_429_pause_holds_back_the_other_processes(databases: list[Database]) -> None:
    """After one limiter is paused for 0.6 s, another one waits that long before sending."""
    first, second = (SharedWindowLimiter(database, 7) for database in databases[:2])
    await first.done(await first.acquire())
    first.pause(0.6)
    await first.aclose()  # the pause is written
    started = time.monotonic()
    await second.acquire()
    assert 0.5 <= time.monotonic() - started < 1.5


async def test_a_403_block_stops_the_other_processes(databases: list[Database]) -> None:
    """After one limiter records a 403 block, another one refuses with the time left."""
    first, second = (SharedWindowLimiter(database, 7) for database in databases[:2])
    first.block(30.0)
    await first.aclose()
    with pytest.raises(IPBlocked) as raised:
        await second.acquire()
    assert raised.value.delay is not None
    assert 25.0 < raised.value.delay <= 30.0


async def test_a_request_still_in_flight_keeps_its_slot(databases: list[Database]) -> None:
    """Requests not yet answered count as arriving now: the 8th waits a window after them."""
    first, second = (SharedWindowLimiter(database, 7) for database in databases[:2])
    slots = [await first.acquire() for _ in range(7)]
    await asyncio.sleep(0.5)  # all seven still "in flight", half a second after they began
    # Counted from the first answer: on a busy machine the seven `done` transactions take
    # a while, and the window rightly frees up one window after the earliest of them.
    answering = time.monotonic()
    for slot in slots:
        await first.done(slot)
    await second.acquire()
    assert time.monotonic() - answering >= 1.0


async def _slots(database: Database) -> list[list[Any]]:
    async with database.read() as conn:
        value = (
            await conn.execute(select(sync_state.c.value).where(sync_state.c.key == DEFAULT_KEY))
        ).scalar_one()
    return list(value["slots"])


async def _logged_calls(database: Database) -> list[tuple[str, str, int, str]]:
    async with database.read() as conn:
        rows = await conn.execute(
            select(
                api_requests.c.method,
                api_requests.c.path,
                api_requests.c.status,
                api_requests.c.purpose,
            )
        )
        return [tuple(row) for row in rows.all()]


async def test_a_call_releases_its_slot_and_logs_itself(
    database: Database,
    make_settings: Callable[..., Settings],
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """The service client's call leaves its answer time in the limiter row and its row in the
    call log (both written by the one transaction after the answer)."""
    lead = fake.add_lead()
    client = build_client(make_settings(), database, purpose="catchup", transport=fake_transport)

    assert [lead["id"]] == [x["id"] for x in await client.fetch_by_ids("leads", [lead["id"]])]
    await client.aclose()

    [(_, granted, answered)] = await _slots(database)
    assert answered is not None
    assert answered >= granted
    assert [("GET", "/api/v4/leads", 200, "catchup")] == await _logged_calls(database)


async def test_a_call_log_that_cannot_be_written_still_releases_the_slot(
    database: Database, fake: FakeAmoState, fake_transport: httpx.ASGITransport
) -> None:
    """A log row that cannot be written (its table is gone) costs that row only: the call
    succeeds and its slot is freed."""
    # Renamed away and back, not dropped: the PostgreSQL database is shared by the whole run.
    async with database.write() as conn:
        await conn.execute(text("ALTER TABLE amocrm_api_requests RENAME TO api_requests_away"))
    lead = fake.add_lead()
    limiter = SharedWindowLimiter(database, 7)
    client = AmoClient(
        "https://testaccount.amocrm.ru",
        LongLivedToken(DEFAULT_TOKEN),
        limiter,
        after_answer=ReleaseAndRecord(limiter, DbCallRecorder(database, "webhook")),
        transport=fake_transport,
    )
    try:
        fetched = await client.fetch_by_ids("leads", [lead["id"]])
    finally:
        await client.aclose()
        async with database.write() as conn:
            await conn.execute(text("ALTER TABLE api_requests_away RENAME TO amocrm_api_requests"))

    assert [lead["id"]] == [x["id"] for x in fetched]
    [(_, _, answered)] = await _slots(database)
    assert answered is not None
