"""A shared 429 pause ends: bounded when noted, bounded when read, visible, never waited out
by `doctor`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from amosync.amocrm.shared_limit import DEFAULT_KEY, SharedWindowLimiter, current_pause
from amosync.db.database import Database
from amosync.db.tables import sync_state
from amosync.doctor.checks import run_checks
from amosync.doctor.facts import gather
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import FakeAmoState, Fault, create_fake_amocrm

NOWHERE = "http://127.0.0.1:9"


async def _row(database: Database) -> dict[str, Any]:
    async with database.read() as conn:
        value = await conn.scalar(select(sync_state.c.value).where(sync_state.c.key == DEFAULT_KEY))
    assert isinstance(value, dict)
    return value


async def _store_pause(database: Database, paused_for: float, blocked_for: float = 0.0) -> None:
    """The row as an older amosync left it after `retry_after: 1e9`."""
    now = time.time()
    value = {
        "slots": [],
        "paused_until": now + paused_for if paused_for else 0.0,
        "blocked_until": now + blocked_for if blocked_for else 0.0,
    }
    async with database.write() as conn:
        await conn.execute(sync_state.delete().where(sync_state.c.key == DEFAULT_KEY))
        await conn.execute(
            sync_state.insert().values(key=DEFAULT_KEY, value=value, updated_at=datetime.now(UTC))
        )


async def test_a_huge_pause_is_stored_as_at_most_two_minutes(database: Database) -> None:
    """`retry_after: 1e9` used to store a pause of 31 years that every process obeyed."""
    limiter = SharedWindowLimiter(database, 7)
    limiter.pause(1e9)
    await limiter.aclose()
    row = await _row(database)
    assert row["paused_until"] <= time.time() + 120.0 + 1.0
    assert row["paused_until"] > time.time() + 100.0


async def test_an_absurd_stored_pause_is_read_as_the_cap_and_written_back(
    database: Database,
) -> None:
    """An old database holding a 31-year pause recovers: read as ≤ 120 s, rewritten so."""
    await _store_pause(database, 1e9)
    pause = await current_pause(database)
    assert pause is not None
    assert "rate_limited" == pause.kind
    assert 100.0 < pause.seconds_left() <= 120.0

    limiter = SharedWindowLimiter(database, 7)
    limiter.pause(0.0)  # any transaction on the row rewrites it
    await limiter.aclose()
    assert (await _row(database))["paused_until"] <= time.time() + 120.0


async def test_a_tuned_cap_ends_an_absurd_stored_pause_that_soon(database: Database) -> None:
    await _store_pause(database, 1e9)
    limiter = SharedWindowLimiter(database, 7, max_pause=0.3)
    started = time.monotonic()
    async with asyncio.timeout(10):
        await limiter.done(await limiter.acquire())
    assert time.monotonic() - started < 2.0


async def test_no_pause_reads_as_none_and_a_block_wins(database: Database) -> None:
    assert await current_pause(database) is None
    await _store_pause(database, 30.0, blocked_for=1e9)
    pause = await current_pause(database)
    assert pause is not None
    assert "ip_blocked" == pause.kind
    assert pause.seconds_left() <= 3600.0


async def test_the_client_obeys_at_most_the_tuned_cap(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A 429 with `retry_after: 1e9` costs AMOSYNC_MAX_RETRY_AFTER seconds, then the call
    succeeds."""
    settings = make_settings(max_retry_after=0.3)
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead()
    fake.script_faults(Fault(status=429, retry_after=1e9))
    client = build_client(
        settings, database, transport=httpx.ASGITransport(app=create_fake_amocrm(fake))
    )
    started = time.monotonic()
    try:
        async with asyncio.timeout(20):
            fetched = await client.fetch_by_ids("leads", [lead["id"]])
    finally:
        await client.aclose()
    assert [lead["id"]] == [x["id"] for x in fetched]
    assert 0.25 < time.monotonic() - started < 5.0


@pytest.mark.parametrize("retry_after", ["inf", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_header_values_are_bounded_too(
    make_settings: Callable[..., Settings], database: Database, retry_after: str
) -> None:
    settings = make_settings(max_retry_after=0.3)
    fake = FakeAmoState(rate_limit_rps=None, send_retry_after_header=True)
    lead = fake.add_lead()
    fake.script_faults(Fault(status=429, body={"title": "Too Many"}, retry_after=retry_after))
    client = build_client(
        settings, database, transport=httpx.ASGITransport(app=create_fake_amocrm(fake))
    )
    try:
        async with asyncio.timeout(20):
            fetched = await client.fetch_by_ids("leads", [lead["id"]])
    finally:
        await client.aclose()
    assert [lead["id"]] == [x["id"] for x in fetched]
    assert (await _row(database))["paused_until"] <= time.time() + 0.3


async def test_doctor_reports_a_pause_instead_of_waiting_it_out(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """With a shared pause in force (the default cap: up to 2 min), doctor answers at once."""
    settings = make_settings(public_url="https://sync.example.com")
    await _store_pause(database, 1e9)
    fake = FakeAmoState(rate_limit_rps=None)
    started = time.monotonic()
    async with asyncio.timeout(30):
        facts = await gather(
            settings, NOWHERE, transport=httpx.ASGITransport(app=create_fake_amocrm(fake))
        )
    assert time.monotonic() - started < 10.0
    assert "paused" == facts.account.kind
    assert [] == fake.calls()
    token = next(r for r in run_checks(settings, facts) if r.name == "token")
    assert "fail" == token.status
    assert "paused" in (token.detail or "")


async def test_doctor_gives_up_on_a_hanging_amocrm(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every probe has an overall deadline, beyond the client's own per-request timeout."""
    import amosync.doctor.facts as facts_module

    monkeypatch.setattr(facts_module, "_call_budget", lambda settings: 0.5)
    settings = make_settings()
    fake = FakeAmoState(rate_limit_rps=None)
    fake.script_faults(Fault(hang=30.0))
    started = time.monotonic()
    async with asyncio.timeout(20):
        facts = await gather(
            settings, NOWHERE, transport=httpx.ASGITransport(app=create_fake_amocrm(fake))
        )
    assert time.monotonic() - started < 5.0
    assert "unreachable" == facts.account.kind
    assert "within" in (facts.account.error or "")
