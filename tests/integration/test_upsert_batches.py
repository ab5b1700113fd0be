"""Upserts of whole worker batches: one fixed statement, rows in power-of-two chunks."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from amosync.core.records import ContactRecord, DealRecord
from amosync.db.database import Database
from amosync.db.tables import contacts, deals
from amosync.upsert import mark_deals_deleted, upsert_deals, upsert_people
from amosync.upsert.entity import power_of_two_chunks
from amosync.upsert.rows import record_rows

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


def deal(deal_id: int, name: str, updated_at: datetime | None) -> DealRecord:
    return DealRecord(
        id=deal_id,
        name=name,
        price=deal_id % 1000,
        status_id=1,
        pipeline_id=2,
        responsible_user_id=3,
        created_at=T0,
        updated_at=updated_at,
        closed_at=None,
        is_deleted=False,
        rentprog_id=f"RP-{deal_id}",
        custom_fields=[{"field_id": 7, "values": [{"value": name}]}],
        raw={"id": deal_id, "name": name, "_embedded": {"tags": [{"id": 1}]}},
    )


def contact(contact_id: int, name: str) -> ContactRecord:
    return ContactRecord(
        id=contact_id,
        name=name,
        first_name=None,
        last_name=None,
        responsible_user_id=None,
        created_at=T0,
        updated_at=T0,
        is_deleted=False,
        phones=["+7 900 000-00-00"],
        emails=[],
        custom_fields=[],
        raw={"id": contact_id, "name": name},
    )


async def names(database: Database) -> dict[int, tuple[str | None, bool]]:
    async with database.read() as conn:
        rows = (await conn.execute(select(deals.c.id, deals.c.name, deals.c.is_deleted))).all()
    return {r.id: (r.name, r.is_deleted) for r in rows}


def test_chunks_are_powers_of_two_in_order() -> None:
    """Chunks cover every row once, in order, with power-of-two sizes of at most 128."""
    rows = list(range(250))

    chunks = list(power_of_two_chunks(rows))

    assert [128, 64, 32, 16, 8, 2] == [len(c) for c in chunks]
    assert rows == [r for c in chunks for r in c]
    assert [[0, 1, 2, 3], [4]] == list(power_of_two_chunks([0, 1, 2, 3, 4]))
    assert [] == list(power_of_two_chunks([]))


def test_record_rows_hold_every_field_and_synced_at() -> None:
    """A row is the record's fields (as `asdict` gives them) plus `synced_at`."""
    record = deal(5, "five", T0)

    assert [{**asdict(record), "synced_at": NOW}] == record_rows([record], NOW)
    assert [] == record_rows([], NOW)


async def test_large_batch_writes_only_newer_and_returns_their_ids(database: Database) -> None:
    """300 deals across several chunks: new and newer ones are written, older ones refused."""
    async with database.write() as conn:
        await upsert_deals(conn, [deal(i, "stored", T0) for i in range(1, 201)], NOW)
    later, earlier = T0 + timedelta(minutes=1), T0 - timedelta(minutes=1)
    batch = (
        [deal(i, "newer", later) for i in range(1, 101)]  # stored, now newer
        + [deal(i, "older", earlier) for i in range(101, 201)]  # stored, copy is older
        + [deal(i, "new", T0) for i in range(201, 301)]  # never stored
    )

    async with database.write() as conn:
        written = await upsert_deals(conn, batch, NOW)

    stored = await names(database)
    assert set(range(1, 101)) | set(range(201, 301)) == written
    assert 300 == len(stored)
    assert {"newer"} == {stored[i][0] for i in range(1, 101)}
    assert {"stored"} == {stored[i][0] for i in range(101, 201)}
    assert {"new"} == {stored[i][0] for i in range(201, 301)}


async def test_batches_of_every_size_return_exactly_the_written_ids(database: Database) -> None:
    """Sizes 1…20 in a row (each a different mix of chunks) all report what they wrote."""
    reported: set[int] = set()
    for size in range(1, 21):
        first = size * 100
        async with database.write() as conn:
            reported |= await upsert_deals(
                conn, [deal(first + k, f"d{size}", T0) for k in range(size)], NOW
            )

    assert {size * 100 + k for size in range(1, 21) for k in range(size)} == reported
    assert len(reported) == len(await names(database))


async def test_mark_deleted_over_many_ids_flags_stored_and_skips_unknown(
    database: Database,
) -> None:
    """150 deleted ids (half stored, half never seen): the stored ones are flagged with
    their data kept; the unknown ones get no row (nothing to count or list as a deal)."""
    async with database.write() as conn:
        await upsert_deals(conn, [deal(i, "kept", T0) for i in range(1, 76)], NOW)

    async with database.write() as conn:
        flagged = await mark_deals_deleted(conn, range(1, 151), NOW)
    async with database.write() as conn:
        again = await mark_deals_deleted(conn, range(1, 151), NOW)

    stored = await names(database)
    assert (75, 0) == (flagged, again)
    assert {("kept", True)} == {stored[i] for i in range(1, 76)}
    assert set(range(1, 76)) == set(stored)


async def test_people_batch_goes_through_the_same_statement(database: Database) -> None:
    """Contacts are upserted in chunks too, and an unchanged copy still counts as written."""
    async with database.write() as conn:
        first = await upsert_people(conn, contacts, [contact(i, "c") for i in range(1, 41)], NOW)
    async with database.write() as conn:
        again = await upsert_people(conn, contacts, [contact(i, "c2") for i in range(1, 41)], NOW)

    async with database.read() as conn:
        stored = {r.id: r.name for r in (await conn.execute(select(contacts))).all()}
    assert (set(range(1, 41)), set(range(1, 41))) == (first, again)
    assert {"c2"} == set(stored.values())
