"""The inbox: leases hide claimed rows, expire by themselves, and retries are scheduled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ClauseElement, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.errors import StorageUnavailable
from amosync.inbox import GroupCommitWriter, InboxStore
from amosync.inbox.store import _BACKLOG, _CLAIM, Retry

NOW = datetime.now(UTC)


def store(database: Database) -> InboxStore:
    """The inbox as `serve` builds it: on SQLite its writes take turns, and its claims and
    settles run as thread transactions (db/thread_transactions.py)."""
    return InboxStore(database)


def row(entity_id: int, *, status: str = "pending", entity: str = "leads") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "received_at": now,
        "source": "webhook",
        "entity": entity,
        "action": "update",
        "entity_id": entity_id,
        "payload": {"id": str(entity_id)},
        "status": status,
        "attempts": 0,
        "available_at": now,
    }


async def statuses(database: Database) -> list[tuple[int, str, int]]:
    async with database.read() as conn:
        rows = await conn.execute(
            select(ev.c.entity_id, ev.c.status, ev.c.attempts).order_by(ev.c.id)
        )
        return [tuple(r) for r in rows.all()]


async def test_claim_leases_rows_once(database: Database) -> None:
    """A claimed row is invisible to the next claim until its lease ends."""
    inbox = store(database)
    await inbox.append([row(1), row(2), row(3, status="ignored")])

    first = await inbox.claim("w1", 10, lease_seconds=60)
    second = await inbox.claim("w2", 10, lease_seconds=60)

    assert [1, 2] == [e.entity_id for e in first]
    assert [1, 1] == [e.attempts for e in first]
    assert [] == second


async def test_expired_lease_is_claimed_again(database: Database) -> None:
    """A worker that died leaves its rows; they come due again when the lease ends."""
    inbox = store(database)
    await inbox.append([row(1)])
    await inbox.claim("dead-worker", 10, lease_seconds=60)
    async with database.write() as conn:  # time passes: the lease ends
        await conn.execute(update(ev).values(available_at=datetime.now(UTC) - timedelta(seconds=1)))

    again = await inbox.claim("w2", 10, lease_seconds=60)

    assert [(1, 2)] == [(e.entity_id, e.attempts) for e in again]


async def test_retry_later_then_failed_after_max_attempts(database: Database) -> None:
    """A retry goes back to pending later; out of attempts it is failed with the reason kept."""
    inbox = store(database)
    await inbox.append([row(1), row(2)])
    claimed = await inbox.claim("w", 10, 60)
    failed = await inbox.retry_later(
        [
            Retry(claimed[0].id, 1, 30.0, "amoCRM answered 502"),
            Retry(claimed[1].id, 3, 30.0, "gave up"),
        ],
        max_attempts=3,
    )

    async with database.read() as conn:
        rows = (
            await conn.execute(
                select(ev.c.status, ev.c.last_error, ev.c.available_at).order_by(ev.c.id)
            )
        ).all()
    assert 1 == failed
    assert [("pending", "amoCRM answered 502"), ("failed", "gave up")] == [
        (r[0], r[1]) for r in rows
    ]
    assert rows[0][2] > datetime.now(UTC) + timedelta(seconds=20)
    assert [] == await inbox.claim("w", 10, 60)


async def test_claim_takes_the_longest_due_first(database: Database) -> None:
    """A retried event waits its delay: newer events that came due before it go first."""
    inbox = store(database)
    await inbox.append([row(1), row(2)])
    earlier = datetime.now(UTC) - timedelta(seconds=30)
    async with database.write() as conn:  # event 1 was retried and came due after event 2
        await conn.execute(update(ev).where(ev.c.entity_id == 1).values(available_at=earlier))
        await conn.execute(
            update(ev).where(ev.c.entity_id == 2).values(available_at=earlier - timedelta(1))
        )

    first = await inbox.claim("w", 1, 60)
    second = await inbox.claim("w", 1, 60)

    assert [2, 1] == [e.entity_id for e in first + second]


async def test_a_claim_reads_only_the_rows_it_takes(database: Database) -> None:
    """The claim walks the (status, available_at, id) index in its own order: no sort of
    every due row, whose cost grows with the backlog (6.6 ms per claim at 100,000 waiting
    events on SQLite, against 0.4 ms)."""
    async with database.write() as conn:
        await _many_events(conn, done=20_000, pending=3_000)
    async with database.read() as conn:
        plan = await _plan(conn, _CLAIM, due_at=NOW, lease_until=NOW, worker_id="w", claim_limit=9)

    assert "amocrm_webhook_events_status_available_at_id" in plan.replace('"', "")
    assert "sort" not in plan.lower().replace("sort key", ""), plan


async def test_the_backlog_reads_only_pending_rows(database: Database) -> None:
    """The health check's backlog query stays in the status index's pending range: a lone
    min(received_at) let PostgreSQL walk every finished row from the oldest (97 ms at 1M)."""
    async with database.write() as conn:
        await _many_events(conn, done=20_000, pending=3_000)
    async with database.read() as conn:
        plan = await _plan(conn, _BACKLOG)

    assert "amocrm_webhook_events_status_available_at_id" in plan.replace('"', ""), plan
    assert "received_at" not in plan, plan


async def _many_events(conn: AsyncConnection, *, done: int, pending: int) -> None:
    """Old finished events below a backlog of pending ones, as after a catch-up."""
    if conn.dialect.name == "postgresql":
        numbers = "SELECT g AS n FROM generate_series(1, :total) AS g"
        stamp = "now() - interval '1 day' + n * interval '1 ms'"
    else:
        numbers = (
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :total) "
            "SELECT n FROM g"
        )
        stamp = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day', (n / 1000.0) || ' seconds')"
    # The fragments above are constants of this test; the numbers are bound parameters.
    insert_many = (
        "INSERT INTO amocrm_webhook_events (received_at, source, entity, action, entity_id,"  # noqa: S608
        " payload, status, attempts, available_at)"
        f" SELECT {stamp}, 'webhook', 'leads', 'update', n, '{{}}',"
        " CASE WHEN n <= :done THEN 'done' ELSE 'pending' END, 0, "
        f"{stamp} FROM ({numbers}) AS s"
    )
    await conn.execute(text(insert_many), {"total": done + pending, "done": done})
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("ANALYZE amocrm_webhook_events")


async def _plan(conn: AsyncConnection, statement: ClauseElement, **params: Any) -> str:
    compiled = statement.compile(dialect=conn.dialect)
    assert isinstance(compiled, SQLCompiler)  # a statement's compiler (positiontup)
    values = compiled.construct_params(params)
    if conn.dialect.name == "postgresql":
        rows = await conn.exec_driver_sql("EXPLAIN " + compiled.string, values)
    else:  # qmark parameters, in order; for a plan their values do not matter
        positional = tuple(str(values[name]) for name in compiled.positiontup or ())
        rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, positional)
    return "\n".join(str(r[-1]) for r in rows.all())


async def test_release_gives_the_attempt_back(database: Database) -> None:
    """Released events (re-auth, shutdown) are due at once and their attempt does not count."""
    inbox = store(database)
    await inbox.append([row(1)])
    claimed = await inbox.claim("w", 10, 60)
    await inbox.release([e.id for e in claimed])

    again = await inbox.claim("w", 10, 60)

    assert [1] == [e.attempts for e in again]


async def test_stats_count_by_status(database: Database) -> None:
    """Stats give counts per status, the backlog and the oldest pending time."""
    inbox = store(database)
    await inbox.append([row(1), row(2, status="ignored"), row(3, status="done")])

    stats = await inbox.stats()

    assert {"pending": 1, "done": 1, "failed": 0, "ignored": 1} == stats.by_status
    assert 1 == stats.backlog
    assert stats.oldest_pending_age() is not None


async def test_backlog_counts_pending_rows_and_finds_the_oldest(database: Database) -> None:
    """The health check's backlog: pending rows only (leased ones too), the oldest first."""
    inbox = store(database)
    assert (0, None) == await inbox.backlog()
    first, second = row(1), row(2)
    second["received_at"] = first["received_at"] + timedelta(seconds=5)
    await inbox.append([row(0, status="done"), first, second, row(3, status="failed")])
    await inbox.claim("w", 1, 60)  # leased, still not done

    assert (2, first["received_at"]) == await inbox.backlog()


async def test_concurrent_claims_never_share_a_row(database: Database, db_url: str) -> None:
    """Four workers claiming at once (own engines, like processes) each get disjoint rows."""
    await store(database).append([row(i) for i in range(400)])
    databases = [Database.open(db_url) for _ in range(4)]
    try:

        async def drain(n: int) -> list[int]:
            inbox, got = store(databases[n]), []
            while batch := await inbox.claim(f"w{n}", 7, 60):
                got += [e.id for e in batch]
            return got

        results = await asyncio.gather(*(drain(n) for n in range(4)))
    finally:
        for e in databases:
            await e.dispose()
    claimed = [i for r in results for i in r]

    assert 400 == len(claimed)
    assert len(claimed) == len(set(claimed))


async def test_group_commit_writes_everything_and_batches(database: Database) -> None:
    """200 concurrent writes all commit, in far fewer transactions than writes."""

    class CountingStore(InboxStore):
        commits = 0

        async def append(self, rows: Any) -> None:
            CountingStore.commits += 1
            await super().append(rows)

    writer = GroupCommitWriter(CountingStore(database))
    writer.start()
    try:
        await asyncio.gather(*(writer.write([row(i)]) for i in range(200)))
    finally:
        await writer.stop()

    assert 200 == len(await statuses(database))
    assert CountingStore.commits < 100


async def test_writer_reports_storage_failure(tmp_path: Any) -> None:
    """When the database cannot be written, every waiting request gets StorageUnavailable."""
    broken = Database.open(f"sqlite:///{tmp_path}/never-migrated.db")  # no tables
    writer = GroupCommitWriter(InboxStore(broken))
    writer.start()
    try:
        with pytest.raises(StorageUnavailable):
            await writer.write([row(1)])
        # The writer survives the failure and keeps serving later requests.
        with pytest.raises(StorageUnavailable):
            await writer.write([row(2)])
    finally:
        await writer.stop()
        await broken.dispose()
