"""A live worker's heartbeat keeps its claimed events leased (worker/claims.py, issue #18).

Short leases (tuned here to seconds) renewed with each heartbeat: a live worker never loses
its batch, however long amoCRM keeps it waiting; a dead one's batch comes back within the
lease; a renewal that fails costs at most a second fetch of the same entities.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from amosync.db.database import Database
from amosync.db.tables import deals, workers
from amosync.db.tables import webhook_events as ev
from amosync.db.types import aware
from amosync.inbox import InboxStore
from amosync.inbox.store import DONE, settle
from amosync.testing import FakeAmoState
from amosync.worker.claims import HeldClaims
from amosync.worker.heartbeat import WorkerState, beat
from tests.integration.test_worker import event, make_worker, rows


async def leases(database: Database) -> dict[int, tuple[str, datetime, str | None]]:
    async with database.read() as conn:
        result = await conn.execute(
            select(ev.c.entity_id, ev.c.status, ev.c.available_at, ev.c.locked_by)
        )
        return {int(r[0]): (r[1], r[2], r[3]) for r in result.all()}


async def test_heartbeat_renews_only_the_workers_own_pending_claims(database: Database) -> None:
    """The renewal moves the lease of events the worker still holds, and nothing else: not
    one it settled, released or rescheduled, nor another worker's."""
    inbox = InboxStore(database)
    await inbox.append([event("leads", n) for n in range(1, 7)])
    mine = await inbox.claim("w1", 4, lease_seconds=10)
    theirs = await inbox.claim("w2", 10, lease_seconds=10)
    assert [1, 2, 3, 4] == [e.entity_id for e in mine]
    assert [5, 6] == [e.entity_id for e in theirs]
    async with inbox.db.write() as conn:
        await settle(conn, [mine[0].id], DONE)
    await inbox.release([mine[1].id])
    before = await leases(database)

    held = HeldClaims(inbox, "w1", lease_seconds=300, held_for=0)
    held.add(e.id for e in [*mine, *theirs])  # a superset is harmless
    await beat(database, WorkerState(id="w1"), also=held.renew_in)

    after = await leases(database)
    soon = datetime.now(UTC) + timedelta(seconds=250)
    for entity_id in (3, 4):
        held_until = aware(after[entity_id][1])
        assert held_until is not None
        assert held_until > soon, after[entity_id]
    for entity_id in (1, 2, 5, 6):
        assert after[entity_id] == before[entity_id]


async def test_a_lease_younger_than_a_beat_is_not_rewritten(database: Database) -> None:
    """Only leases claimed or renewed at least `held_for` ago move: a batch settled within
    a beat costs the renewal no row writes."""
    inbox = InboxStore(database)
    await inbox.append([event("leads", n) for n in range(1, 3)])
    claimed = await inbox.claim("w1", 10, lease_seconds=20)
    before = await leases(database)
    held = HeldClaims(inbox, "w1", lease_seconds=20, held_for=5)
    held.add(e.id for e in claimed)

    await beat(database, WorkerState(id="w1"), also=held.renew_in)

    assert before == await leases(database)


async def test_live_worker_keeps_its_batch_past_the_lease(database: Database) -> None:
    """amoCRM answers after 3 lease lengths: the heartbeat keeps the batch with the worker
    holding it, a second worker claims nothing meanwhile, and each event is claimed once."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [int(fake.add_lead(name=f"slow {n}")["id"]) for n in range(5)]
    await InboxStore(database).append([event("leads", i) for i in ids])
    fake.latency_seconds = 3.0
    tuned: dict[str, Any] = {"lease_seconds": 1.0, "heartbeat_interval": 0.2}
    first = make_worker(database, fake, **tuned)
    second = make_worker(database, fake, **tuned)

    running = asyncio.create_task(first.run())
    taken = 0
    for _ in range(30):  # 3 s, while the first worker waits for amoCRM
        await asyncio.sleep(0.1)
        taken += await second.run_once()
    await _until_done(database, len(ids))
    first.stop()
    await running

    assert 0 == taken
    assert [("done", 1)] * len(ids) == await rows(database, select(ev.c.status, ev.c.attempts))
    assert 1 == len(fake.calls("/api/v4/leads"))


async def test_worker_once_keeps_its_batch_too(database: Database) -> None:
    """`worker --once` calls `run_once()` inside `beating()`: its claims are renewed the
    same way, and its row ends `stopped`."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [int(fake.add_lead(name=f"once {n}")["id"]) for n in range(3)]
    await InboxStore(database).append([event("leads", i) for i in ids])
    fake.latency_seconds = 3.0
    tuned: dict[str, Any] = {"lease_seconds": 1.0, "heartbeat_interval": 0.2}
    once = make_worker(database, fake, **tuned)
    other = make_worker(database, fake, **tuned)

    async def drain_once() -> None:
        async with once.beating():
            while await once.run_once():
                pass

    running = asyncio.create_task(drain_once())
    taken = 0
    for _ in range(30):
        await asyncio.sleep(0.1)
        taken += await other.run_once()
    await running

    assert 0 == taken
    assert [("done", 1)] * len(ids) == await rows(database, select(ev.c.status, ev.c.attempts))
    assert [("stopped",)] == await rows(database, select(workers.c.state))


async def test_a_lapsed_lease_costs_only_a_second_fetch(database: Database) -> None:
    """No renewal reaches the database (as if it were down for longer than the lease): the
    batch lapses, another worker fetches the same leads again, and both settle them. The
    result is the same as with one fetch: every event done, every deal stored once."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [int(fake.add_lead(name=f"twice {n}")["id"]) for n in range(5)]
    await InboxStore(database).append([event("leads", i) for i in ids])
    fake.latency_seconds = 2.0
    # A heartbeat too rare to renew in time stands in for renewals that fail.
    stalled = make_worker(database, fake, lease_seconds=0.5, heartbeat_interval=3600)
    other = make_worker(database, fake, lease_seconds=30)

    first = asyncio.create_task(stalled.run_once())
    await asyncio.sleep(1.0)  # lapsed, the first worker still waiting for amoCRM
    second = await other.run_once()
    await first

    assert 5 == second
    assert 2 == len(fake.calls("/api/v4/leads"))
    assert [("done",)] * len(ids) == await rows(database, select(ev.c.status))
    stored = await rows(database, select(deals.c.id, deals.c.name).order_by(deals.c.id))
    assert [(i, f"twice {n}") for n, i in enumerate(ids)] == stored


async def _until_done(database: Database, count: int) -> None:
    for _ in range(200):
        if [("done",)] * count == await rows(database, select(ev.c.status)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(await rows(database, select(ev.c.status, ev.c.locked_by)))
