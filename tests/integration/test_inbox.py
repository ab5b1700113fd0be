"""The inbox: leases hide claimed rows, expire by themselves, and retries are scheduled."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.db.engine import create_service_engine
from amosync.db.tables import webhook_events as ev
from amosync.errors import StorageUnavailable
from amosync.inbox import GroupCommitWriter, InboxStore
from amosync.inbox.store import Retry


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


async def statuses(engine: AsyncEngine) -> list[tuple[int, str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(ev.c.entity_id, ev.c.status, ev.c.attempts).order_by(ev.c.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_claim_leases_rows_once(engine: AsyncEngine) -> None:
    """A claimed row is invisible to the next claim until its lease ends."""
    inbox = InboxStore(engine)
    await inbox.append([row(1), row(2), row(3, status="ignored")])

    first = await inbox.claim("w1", 10, lease_seconds=60)
    second = await inbox.claim("w2", 10, lease_seconds=60)

    assert [1, 2] == [e.entity_id for e in first]
    assert [1, 1] == [e.attempts for e in first]
    assert [] == second


async def test_expired_lease_is_claimed_again(engine: AsyncEngine) -> None:
    """A worker that died leaves its rows; they come due again when the lease ends."""
    inbox = InboxStore(engine)
    await inbox.append([row(1)])
    await inbox.claim("dead-worker", 10, lease_seconds=60)
    async with engine.begin() as conn:  # time passes: the lease ends
        await conn.execute(update(ev).values(available_at=datetime.now(UTC) - timedelta(seconds=1)))

    again = await inbox.claim("w2", 10, lease_seconds=60)

    assert [(1, 2)] == [(e.entity_id, e.attempts) for e in again]


async def test_retry_later_then_failed_after_max_attempts(engine: AsyncEngine) -> None:
    """A retry goes back to pending later; out of attempts it is failed with the reason kept."""
    inbox = InboxStore(engine)
    await inbox.append([row(1), row(2)])
    claimed = await inbox.claim("w", 10, 60)
    failed = await inbox.retry_later(
        [
            Retry(claimed[0].id, 1, 30.0, "amoCRM answered 502"),
            Retry(claimed[1].id, 3, 30.0, "gave up"),
        ],
        max_attempts=3,
    )

    async with engine.connect() as conn:
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


async def test_release_gives_the_attempt_back(engine: AsyncEngine) -> None:
    """Released events (re-auth, shutdown) are due at once and their attempt does not count."""
    inbox = InboxStore(engine)
    await inbox.append([row(1)])
    claimed = await inbox.claim("w", 10, 60)
    await inbox.release([e.id for e in claimed])

    again = await inbox.claim("w", 10, 60)

    assert [1] == [e.attempts for e in again]


async def test_stats_count_by_status(engine: AsyncEngine) -> None:
    """Stats give counts per status, the backlog and the oldest pending time."""
    inbox = InboxStore(engine)
    await inbox.append([row(1), row(2, status="ignored"), row(3, status="done")])

    stats = await inbox.stats()

    assert {"pending": 1, "done": 1, "failed": 0, "ignored": 1} == stats.by_status
    assert 1 == stats.backlog
    assert stats.oldest_pending_age() is not None


async def test_concurrent_claims_never_share_a_row(engine: AsyncEngine, db_url: str) -> None:
    """Four workers claiming at once (own engines, like processes) each get disjoint rows."""
    await InboxStore(engine).append([row(i) for i in range(400)])
    engines = [create_service_engine(db_url) for _ in range(4)]
    try:

        async def drain(n: int) -> list[int]:
            store, got = InboxStore(engines[n]), []
            while batch := await store.claim(f"w{n}", 7, 60):
                got += [e.id for e in batch]
            return got

        results = await asyncio.gather(*(drain(n) for n in range(4)))
    finally:
        for e in engines:
            await e.dispose()
    claimed = [i for r in results for i in r]

    assert 400 == len(claimed)
    assert len(claimed) == len(set(claimed))


async def test_group_commit_writes_everything_and_batches(engine: AsyncEngine) -> None:
    """200 concurrent writes all commit, in far fewer transactions than writes."""

    class CountingStore(InboxStore):
        commits = 0

        async def append(self, rows: Any) -> None:
            CountingStore.commits += 1
            await super().append(rows)

    writer = GroupCommitWriter(CountingStore(engine))
    writer.start()
    try:
        await asyncio.gather(*(writer.write([row(i)]) for i in range(200)))
    finally:
        await writer.stop()

    assert 200 == len(await statuses(engine))
    assert CountingStore.commits < 100


async def test_writer_reports_storage_failure(tmp_path: Any) -> None:
    """When the database cannot be written, every waiting request gets StorageUnavailable."""
    broken = create_service_engine(f"sqlite:///{tmp_path}/never-migrated.db")  # no tables
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
