"""The generic lease row (db/lease.py), on SQLite and PostgreSQL, with two holders on two
engines standing in for two processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.lease import Lease, LeaseHolder
from amosync.db.tables import sync_state

KEY = "test.lease"


class RolledBack(Exception):
    """Raised inside a transaction to roll it back."""


@pytest.fixture
async def other_database(db_url: str) -> AsyncIterator[Database]:
    """A second engine on the same database: another process's connection pool."""
    database = Database.open(db_url)
    yield database
    await database.dispose()


async def lease_value(database: Database) -> dict[str, Any]:
    async with database.read() as conn:
        query = select(sync_state.c.value).where(sync_state.c.key == KEY)
        value = (await conn.execute(query)).scalar_one()
    assert isinstance(value, dict)
    return value


async def release_then_roll_back(database: Database, lease: Lease) -> None:
    async with database.write() as conn:
        await lease.release_in(conn)
        raise RolledBack


async def test_second_holder_is_refused_while_the_first_holds_it(
    database: Database, other_database: Database
) -> None:
    """While A holds the lease, B is refused with A's name and expiry, and sees A as holder."""
    first = Lease(database, KEY, "host-a/1", seconds=60)
    second = Lease(other_database, KEY, "host-b/2", seconds=60)
    before = time.time()

    taken = await first.acquire()
    refused = await second.acquire()
    seen = await second.current()

    assert taken is None
    assert refused is not None
    assert seen is not None
    assert ("host-a/1", False) == (refused.holder, refused.recently_finished)
    assert (True, True) == (refused.until >= before + 60, 59 < refused.seconds_left <= 60)
    assert LeaseHolder("host-a/1", refused.until) == seen


async def test_same_holder_may_acquire_again(database: Database) -> None:
    """Acquiring a lease one already holds succeeds (and extends it)."""
    lease = Lease(database, KEY, "host-a/1", seconds=60)

    results = [await lease.acquire(), await lease.acquire()]

    assert [None, None] == results


async def test_expired_lease_is_taken_over_and_the_old_holder_cannot_touch_it(
    database: Database, other_database: Database
) -> None:
    """After A's lease lapses, B takes it; A's late renew fails and A's release leaves B's
    lease in place."""
    first = Lease(database, KEY, "host-a/1", seconds=0.2)
    second = Lease(other_database, KEY, "host-b/2", seconds=60)
    assert None is await first.acquire()
    await asyncio.sleep(0.3)

    assert None is await first.current()
    assert None is await second.acquire()
    renewed = await first.renew()
    await first.release(finished=True)

    value = await lease_value(database)
    holder = await first.current()
    assert (False, "host-b/2") == (renewed, value["holder"])
    assert ("host-b/2", False) == (holder.holder if holder else None, "finished_at" in value)
    assert None is not await first.acquire()


async def test_renew_pushes_the_expiry_ahead(database: Database) -> None:
    """A holder that renews keeps its lease past the original expiry."""
    lease = Lease(database, KEY, "host-a/1", seconds=0.5)
    assert None is await lease.acquire()
    first_until = (await lease_value(database))["until"]
    await asyncio.sleep(0.3)

    renewed = await lease.renew()
    await asyncio.sleep(0.3)

    holder = await lease.current()
    assert (True, "host-a/1") == (renewed, holder.holder if holder else None)
    assert holder is not None
    assert holder.until > first_until


async def test_release_in_a_rolled_back_transaction_keeps_the_lease(
    database: Database, other_database: Database
) -> None:
    """`release_in` frees the lease only when the caller's transaction commits."""
    first = Lease(database, KEY, "host-a/1", seconds=60)
    second = Lease(other_database, KEY, "host-b/2", seconds=60)
    assert None is await first.acquire()

    with pytest.raises(RolledBack):
        await release_then_roll_back(database, first)
    refused_after_rollback = await second.acquire()
    async with database.write() as conn:
        await first.release_in(conn)
    after_commit = await second.acquire()

    assert refused_after_rollback is not None
    assert ("host-a/1", None) == (refused_after_rollback.holder, after_commit)


async def test_min_gap_skips_a_turn_after_a_finished_run(
    database: Database, other_database: Database
) -> None:
    """After A finishes a complete run, B with `min_gap` is refused (naming A); B without it,
    or after an unfinished run, is not."""
    first = Lease(database, KEY, "host-a/1", seconds=60)
    second = Lease(other_database, KEY, "host-b/2", seconds=60)
    assert None is await first.acquire()
    await first.release(finished=True)

    refused = await second.acquire(min_gap=600)
    taken = await second.acquire()
    await second.release(finished=False)
    value = await lease_value(database)

    assert refused is not None
    assert ("host-a/1", True) == (refused.holder, refused.recently_finished)
    assert 599 < refused.seconds_left <= 600
    assert None is taken
    assert (None, 0.0, "host-b/2", "host-a/1") == (
        value["holder"],
        value["until"],
        value["last_holder"],
        value["finished_by"],
    )


async def test_row_in_an_unknown_shape_reads_as_free(database: Database) -> None:
    """A row written by an older version (`owner` instead of `holder`) does not block, and
    its stray keys are dropped on the next write."""
    async with database.write() as conn:
        await conn.execute(
            upsert_insert(conn, sync_state).values(
                key=KEY,
                value={"owner": "old-version", "until": time.time() + 600},
                updated_at=datetime.now(UTC),
            )
        )
    lease = Lease(database, KEY, "host-a/1", seconds=60)

    free_before = await lease.current()
    taken = await lease.acquire()

    assert (None, None) == (free_before, taken)
    assert ["holder", "until"] == sorted(await lease_value(database))


async def test_kept_lease_outlives_its_length_while_the_holder_lives(
    database: Database, other_database: Database
) -> None:
    """Inside `kept()` a background task renews the lease: a holder working for several
    lease lengths (a page held up behind 429s) keeps it; once it stops renewing (a crash),
    the lease lapses after one length and another process takes it."""
    holder = Lease(database, KEY, "host-a/1", seconds=0.6)
    other = Lease(other_database, KEY, "host-b/2", seconds=0.6)
    assert None is await holder.acquire()

    async with holder.kept(every=0.1):
        await asyncio.sleep(1.5)
        refused = await other.acquire()
    await asyncio.sleep(0.8)  # nobody renews: as after kill -9
    taken = await other.acquire()

    assert refused is not None
    assert 0 < refused.seconds_left <= 0.6
    assert taken is None


class _Hiccup(Lease):
    """A lease whose first renewals fail as on a database hiccup."""

    failures = 2

    async def renew(self) -> bool:
        if self.failures:
            self.failures -= 1
            raise OperationalError("UPDATE amosync_state", {}, Exception("server closed"))
        return await super().renew()


async def test_a_failed_renewal_is_retried_and_never_ends_the_holders_work(
    database: Database, other_database: Database
) -> None:
    """A renewal that fails is logged and tried again at the next tick; the holder's work
    goes on and the lease is still held afterwards."""
    holder = _Hiccup(database, KEY, "host-a/1", seconds=1.0)
    assert None is await holder.acquire()

    async with holder.kept(every=0.1):
        await asyncio.sleep(1.5)

    assert 0 == holder.failures
    refused = await Lease(other_database, KEY, "host-b/2", seconds=1.0).acquire()
    assert refused is not None
    assert refused.holder == "host-a/1"
