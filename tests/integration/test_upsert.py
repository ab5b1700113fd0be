"""Upserts are idempotent and monotonic: an older copy never overwrites a newer row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from amosync.core.records import DealContactLink, DealRecord
from amosync.db.database import Database
from amosync.db.tables import deal_contacts, deals
from amosync.upsert import mark_deals_deleted, replace_deal_links, upsert_deals

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def deal(
    deal_id: int, name: str, updated_at: datetime | None, rentprog: str | None = None
) -> DealRecord:
    return DealRecord(
        id=deal_id,
        name=name,
        price=100,
        status_id=1,
        pipeline_id=2,
        responsible_user_id=3,
        created_at=T0,
        updated_at=updated_at,
        closed_at=None,
        is_deleted=False,
        rentprog_id=rentprog,
        custom_fields=[],
        raw={"id": deal_id, "name": name},
    )


async def stored(database: Database, deal_id: int) -> dict[str, object]:
    async with database.read() as conn:
        row = (await conn.execute(select(deals).where(deals.c.id == deal_id))).mappings().one()
        return dict(row)


async def write(
    database: Database, *records: DealRecord, fetched_at: datetime | None = None
) -> set[int]:
    async with database.write() as conn:
        return await upsert_deals(conn, list(records), datetime.now(UTC), fetched_at=fetched_at)


async def test_newer_copy_replaces_row(database: Database) -> None:
    """A copy with a later updated_at overwrites every column."""
    await write(database, deal(1, "old", T0))
    written = await write(database, deal(1, "new", T0 + timedelta(seconds=5), rentprog="RP-7"))

    row = await stored(database, 1)
    assert {1} == written
    assert ("new", "RP-7", T0 + timedelta(seconds=5)) == (
        row["name"],
        row["rentprog_id"],
        row["updated_at"],
    )


async def test_older_copy_is_refused(database: Database) -> None:
    """A reordered, older copy leaves the newer row as it is."""
    await write(database, deal(1, "new", T0 + timedelta(seconds=5)))
    written = await write(database, deal(1, "old", T0))

    assert set() == written
    assert "new" == (await stored(database, 1))["name"]


async def test_same_copy_twice_is_harmless(database: Database) -> None:
    """Applying the same state again (a duplicate delivery) keeps one row with that state."""
    await write(database, deal(1, "same", T0, "RP-1"))
    await write(database, deal(1, "same", T0, "RP-1"))

    async with database.read() as conn:
        rows = (await conn.execute(select(deals.c.id, deals.c.name))).all()
    assert [(1, "same")] == [tuple(r) for r in rows]


async def test_deleted_row_is_not_resurrected_by_equal_copy(database: Database) -> None:
    """A slow worker's copy fetched before the deletion (same updated_at) cannot undelete."""
    await write(database, deal(1, "x", T0))
    fetched_before = datetime.now(UTC)
    async with database.write() as conn:
        await mark_deals_deleted(conn, [1], datetime.now(UTC))
    await write(database, deal(1, "x", T0), fetched_at=fetched_before)
    await write(database, deal(1, "x", T0 + timedelta(seconds=5)), fetched_at=fetched_before)

    assert True is (await stored(database, 1))["is_deleted"]


async def test_a_copy_fetched_after_the_flag_clears_it_whatever_its_updated_at(
    database: Database,
) -> None:
    """amoCRM returning the entity after it was flagged proves it exists: a false deletion
    is undone even by the same (or an older) updated_at."""
    await write(database, deal(1, "x", T0 + timedelta(seconds=5)))
    async with database.write() as conn:
        await mark_deals_deleted(conn, [1], datetime.now(UTC))
    await write(database, deal(1, "x", T0))

    row = await stored(database, 1)
    assert (False, T0) == (row["is_deleted"], row["updated_at"])


async def test_restore_with_newer_copy_undeletes(database: Database) -> None:
    """A restored deal (newer updated_at) comes back; a deletion of an unknown id leaves no
    row."""
    await write(database, deal(2, "before", T0))
    async with database.write() as conn:
        flagged = await mark_deals_deleted(conn, [2, 3], datetime.now(UTC))
    deleted = await stored(database, 2)
    await write(database, deal(2, "restored", T0 + timedelta(seconds=5)))

    row = await stored(database, 2)
    assert (1, True, "before") == (flagged, deleted["is_deleted"], deleted["name"])
    assert (False, "restored") == (row["is_deleted"], row["name"])
    async with database.read() as conn:
        assert [2] == list((await conn.execute(select(deals.c.id))).scalars())


async def test_links_are_replaced_not_accumulated(database: Database) -> None:
    """The stored links of a deal become exactly the latest list from amoCRM."""
    async with database.write() as conn:
        await replace_deal_links(
            conn, [1], [DealContactLink(1, 10, True), DealContactLink(1, 11, False)]
        )
    async with database.write() as conn:
        await replace_deal_links(conn, [1], [DealContactLink(1, 11, True)])

    async with database.read() as conn:
        links = (await conn.execute(select(deal_contacts))).all()
    assert [(1, 11, True)] == [tuple(r) for r in links]
