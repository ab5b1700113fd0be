"""Scenario 2, amoCRM faults: 429 storms, 5xx bursts, timeouts, resets, a revoked then
restored token and an IP block, all while events arrive. Afterwards the tables equal amoCRM,
the rate limit held in every second, and nothing that a retry could fix is `failed`."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import httpx
import pytest

from amosync.db.database import Database
from amosync.settings import Settings
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, Fault, create_fake_amocrm
from tests.reliability.harness import (
    LEAD_TEMPLATES,
    deal_mismatches,
    densest_second,
    lead_body,
    report,
    seed_leads,
)
from tests.reliability.inprocess import FlakyNetwork, deliver, drain, make_worker, statuses


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_worker_rides_out_every_amocrm_fault(
    make_settings: Callable[..., Settings], database: Database, db_url: str
) -> None:
    """Every fault kind in one run: all events end done and the deals equal the fake's."""
    fake = FakeAmoState(retry_after_seconds=1)
    lead_ids = seed_leads(fake, 41_000_001, 80)
    network = FlakyNetwork(httpx.ASGITransport(app=create_fake_amocrm(fake)))
    settings = make_settings(api_timeout=0.5, ip_block_cooldown=1.0)
    worker = make_worker(settings, database, network)
    chance = random.Random(2)
    injected: dict[str, int] = {}

    def inject(kind: str, count: int = 1) -> None:
        injected[kind] = injected.get(kind, 0) + count

    async def amocrm_misbehaves() -> None:
        await asyncio.sleep(0.3)
        fake.script_faults(*[Fault(status=429, retry_after=1)] * 6)
        inject("429 with retry_after", 6)
        await asyncio.sleep(1.5)
        fake.script_faults(*[Fault(status=s) for s in (500, 502, 503, 504, 503)])
        inject("5xx", 5)
        await asyncio.sleep(1.0)
        fake.script_faults(Fault(hang=2.0), Fault(hang=2.0))
        inject("timeout", 2)
        await asyncio.sleep(1.5)
        network.resets_after_send, network.refused_connects = 2, 2
        inject("connection reset", 2)
        inject("connection refused", 2)
        await asyncio.sleep(1.0)
        fake.revoke_tokens()
        await until_seen(401)
        await asyncio.sleep(0.5)
        fake.tokens.add(DEFAULT_TOKEN)
        inject("401 until the token is valid again (0.5 s after the first)")
        fake.ip_blocked_until = fake.clock() + 30
        await until_seen(403)
        await asyncio.sleep(1.0)
        fake.ip_blocked_until = fake.clock()
        inject("403 IP block (1 s after the first)")
        faults_over.set()

    async def until_seen(status: int) -> None:
        # Time-based faults can fall into a quiet moment on a slow machine; wait for a hit.
        for _ in range(200):
            if fake.calls("/api/v4/", status=status):
                return
            await asyncio.sleep(0.05)

    named: set[int] = set()
    faults_over = asyncio.Event()

    async def webhooks_arrive() -> int:
        delivered = 0
        sent = 0
        while sent < 240 or not faults_over.is_set():
            sent += 1
            lead_id = chance.choice(lead_ids)
            named.add(lead_id)
            if chance.random() < 0.3:
                fake.update_lead(lead_id, price=chance.randrange(1, 10**6))
            delivered += await deliver(database, lead_body(chance.choice(LEAD_TEMPLATES), lead_id))
            await asyncio.sleep(0.04)
        return delivered

    started = time.monotonic()
    running = asyncio.create_task(worker.run())
    delivered, _ = await asyncio.gather(webhooks_arrive(), amocrm_misbehaves())
    drained = await drain(database, timeout=60)
    worker.stop()
    await running
    await worker.client.aclose()

    counts = await statuses(database)
    most = fake.max_calls_in_any_window(1.0, "/api/v4/")
    report(
        f"faults-{db_url.split(':', 1)[0]}",
        events=delivered,
        statuses=counts,
        faults=injected,
        api_calls=len(fake.calls("/api/v4/")),
        answered_429=fake.count_429(),
        max_calls_in_any_second=most,
        seconds=round(time.monotonic() - started, 1),
        drain_seconds=round(drained, 1),
    )
    assert {"done": delivered} == counts
    assert 0 == fake.pending_faults
    # The token and IP faults really met requests (they are not queued faults).
    assert [] != fake.calls("/api/v4/", status=401)
    assert [] != fake.calls("/api/v4/", status=403)
    assert [] == deal_mismatches(db_url, fake, named)
    assert most <= 7, str(densest_second(fake))
