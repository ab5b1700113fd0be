"""In one process on SQLite, webhook commits and the worker's transactions take turns
(db/turns.py) instead of meeting at SQLite's write lock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.db.tables import deals, webhook_events
from amosync.db.tables import webhook_events as ev
from amosync.db.turns import WriteTurns
from amosync.inbox import InboxStore
from amosync.inbox.sqlite_append import SqliteAppender
from amosync.inbox.writer import direct_appender
from amosync.services import build_services
from amosync.settings import Settings
from amosync.testing import FakeAmoState
from tests.integration.test_sqlite_append import full_row, stored
from tests.integration.test_worker import event, make_worker, rows


@pytest.fixture
async def sqlite_database(tmp_path: Path, sqlite_template: Path) -> Database:
    path = tmp_path / "amosync.db"
    path.write_bytes(sqlite_template.read_bytes())
    return Database.open(f"sqlite:///{path}")


async def test_turns_run_one_at_a_time_on_sqlite_only() -> None:
    for dialect, expected in (("sqlite", ["a in", "a out", "b in", "b out"]), ("postgresql", None)):
        turns = WriteTurns.for_dialect(dialect)
        order: list[str] = []

        async def hold(name: str, turns: WriteTurns = turns, order: list[str] = order) -> None:
            async with turns.turn():
                order.append(f"{name} in")
                await asyncio.sleep(0.02)
                order.append(f"{name} out")

        await asyncio.gather(hold("a"), hold("b"))
        if expected:
            assert order == expected
        else:
            assert order[:2] == ["a in", "b in"]  # PostgreSQL locks rows: both at once


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Yield to the loop until `condition` holds. The tests below wait for a state (a commit
    queued for its turn, or retried at SQLite's lock), not for a time: a fixed sleep was too
    short for the commit to get there when the machine was loaded."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


async def _append_during_transaction(
    database: Database, inbox: InboxStore, appender: SqliteAppender, shared: bool
) -> None:
    """The worker's side holds a write transaction while a webhook commit comes; the
    transaction ends only once the commit waits: queued for its turn when the appender shares
    the database's turns, else after it met SQLite's lock at least once."""
    async with inbox.db.write() as conn:
        await conn.execute(insert(webhook_events), [full_row(1)])
        taken = database.turns.taken
        append = asyncio.create_task(appender.append([full_row(2)]))
        if shared:
            await until(lambda: database.turns.taken > taken)
        else:
            await until(lambda: appender.lock_retries > 0)
        assert not append.done()
    await asyncio.wait_for(append, 10)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-turns", "own-turns"])
async def test_webhook_commit_waits_for_its_turn_not_for_sqlite(
    sqlite_database: Database, shared: bool
) -> None:
    """Sharing the database's turns, the commit never meets the lock inside SQLite (no retry)
    and lands right after the transaction. The contrast: an appender on another Database of
    the same file (as in another process), with turns of its own, meets SQLite's lock and
    retries."""
    inbox = InboxStore(sqlite_database)
    other = None if shared else Database.open(str(sqlite_database.url))
    appender = SqliteAppender(other or sqlite_database)
    try:
        await _append_during_transaction(sqlite_database, inbox, appender, shared)
    finally:
        await appender.aclose()
        if other is not None:
            await other.dispose()
    rows = await stored(sqlite_database)
    await sqlite_database.dispose()
    assert (appender.lock_retries == 0) is shared
    assert [r["entity_id"] for r in rows] == [1, 2]


async def test_every_writer_of_the_service_shares_the_databases_turns(
    make_settings: Callable[..., Settings],
) -> None:
    """The rate limiter, the call log, leases, the heartbeat and the rest write through
    `Database.write()`, in the same turns as the inbox and the webhook commits: a webhook
    commit arriving during such a transaction waits for it without meeting SQLite's lock
    (before, 259 such commits in 10 s of load slept and retried)."""
    services = build_services(make_settings())
    database = services.db
    appender = direct_appender(services.inbox)
    lease = Lease(database, "test-lease", "holder", 30)
    try:
        sqlite = database.dialect == "sqlite"
        turns = database.turns
        async with database.write() as conn:
            await conn.execute(insert(webhook_events), [full_row(1)])
            taken = turns.taken
            append = asyncio.create_task(appender.append([full_row(2)]))
            acquire = asyncio.create_task(lease.acquire())
            if sqlite:
                # Both queue behind the turn this transaction holds (counted, not timed).
                await until(lambda: turns.taken - taken == 2)
                assert [False, False] == [append.done(), acquire.done()]
            else:
                # PostgreSQL takes no turns: neither touches a row this transaction holds,
                # so both finish while it is still open.
                await asyncio.wait_for(asyncio.gather(append, acquire), 10)
        await asyncio.wait_for(append, 10)
        assert await asyncio.wait_for(acquire, 10) is None  # the lease was free: taken
        assert 0 == getattr(appender, "lock_retries", 0)
        assert [1, 2] == [r["entity_id"] for r in await stored(database)]
    finally:
        await appender.aclose()
        await services.aclose()


async def test_bulk_updates_take_short_turns_where_writes_take_turns(database: Database) -> None:
    """On SQLite a claim or a settle of 600 events is three transactions of <= 250 rows, so a
    webhook commit never waits for a long one; on PostgreSQL it is one."""
    sqlite = database.dialect == "sqlite"
    inbox = InboxStore(database)
    await inbox.append([event("leads", 7000 + n % 4) for n in range(600)])

    taken = database.turns.taken
    claimed = await inbox.claim("w1", 600, lease_seconds=60)
    assert database.turns.taken - taken == (3 if sqlite else 1)
    ids = [e.id for e in claimed]
    assert len(set(ids)) == 600
    assert ids == sorted(ids)
    assert {e.attempts for e in claimed} == {1}
    assert [] == await inbox.claim("w2", 600, lease_seconds=60)  # all 600 leased

    taken = database.turns.taken
    await inbox.mark_done(ids)
    assert database.turns.taken - taken == (3 if sqlite else 1)
    assert (await inbox.stats()).by_status["done"] == 600


async def test_a_claim_stops_at_the_first_short_turn(database: Database) -> None:
    inbox = InboxStore(database)
    await inbox.append([event("leads", 7000 + n) for n in range(260)])
    taken = database.turns.taken
    assert 260 == len(await inbox.claim("w1", 5000, lease_seconds=60))
    assert database.turns.taken - taken == (2 if database.dialect == "sqlite" else 1)


async def test_worker_settles_a_large_batch_after_its_upsert(database: Database) -> None:
    """600 events about 2 leads: one API call; the upsert commits with the first 250 marked
    done and the rest are marked in short transactions after it (on SQLite)."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [fake.add_lead()["id"] for _ in range(2)]
    inbox = InboxStore(database)
    await inbox.append([event("leads", ids[n % 2]) for n in range(600)])

    worker = make_worker(database, fake, inbox=inbox, batch_size=600)
    assert 600 == await worker.run_once()

    assert 1 == len(fake.calls("/api/v4/leads"))
    assert sorted(ids) == [
        r[0] for r in await rows(database, select(deals.c.id).order_by(deals.c.id))
    ]
    assert {("done", 600)} == set(
        await rows(database, select(ev.c.status, func.count()).group_by(ev.c.status))
    )
    assert worker.state.processed == 600
