"""Verification finds every kind of divergence from amoCRM and repairs it (SQLite, PostgreSQL).

Rows are stored through the worker's own apply path, then amoCRM (the in-package fake) or
the stored copy is changed behind the sync's back — no webhook — and `Verifier` must find
the difference, overwrite the row with amoCRM's copy, and prove it by reading it back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from amosync.amocrm import AmoClient
from amosync.catchup.budget import VERIFY
from amosync.catchup.verify import Verifier, VerifyReport
from amosync.catchup.verify_select import oldest_verified
from amosync.catchup.verify_state import read_last, write_last
from amosync.core.answer import map_answer
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.tables import contacts, deal_contacts, deals, verified, webhook_events
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import (
    RENTPROG_FIELD_ID,
    FakeAmoState,
    Fault,
    create_fake_amocrm,
    rentprog_field,
)
from amosync.upsert import mark_deals_deleted
from amosync.worker.apply import apply_fetched

Factory = Callable[..., Settings]
RENTPROG = RentProgField(RENTPROG_FIELD_ID)


@pytest.fixture
def fake() -> FakeAmoState:
    # A few seconds behind real time: same-second edits never carry a future updated_at.
    return FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)


@pytest.fixture
def transport(fake: FakeAmoState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_fake_amocrm(fake))


@pytest.fixture
async def client(
    make_settings: Factory, database: Database, transport: httpx.ASGITransport
) -> AsyncIterator[AmoClient]:
    client = build_client(make_settings(), database, purpose=VERIFY, transport=transport)
    yield client
    await client.aclose()


async def store(database: Database, client: AmoClient, entity: str, ids: list[int]) -> None:
    """Fetch these ids and store them as the worker does (apply_fetched)."""
    for start in range(0, len(ids), 250):
        chunk = ids[start : start + 250]
        objects = await client.fetch_by_ids(entity, chunk)
        answer = map_answer(entity, chunk, objects, RENTPROG)
        async with database.write() as conn:
            await apply_fetched(conn, answer, [])


async def verify(database: Database, client: AmoClient, entity: str = "leads") -> VerifyReport:
    async with database.read() as conn:
        table = deals if entity == "leads" else contacts
        ids = [int(i) for i in (await conn.execute(select(table.c.id))).scalars()]
    return await Verifier(database, client, RENTPROG).verify(entity, sorted(ids))


async def row(database: Database, deal_id: int) -> dict[str, Any]:
    async with database.read() as conn:
        found = (await conn.execute(select(deals).where(deals.c.id == deal_id))).one()
    return dict(found._mapping)


def summary(report: VerifyReport) -> tuple[int, int, int, int]:
    return report.checked, report.diverged, report.repaired, report.unrepaired


async def test_a_matching_copy_has_no_divergence_and_costs_one_call(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    ids = [fake.add_lead(price=100 * n)["id"] for n in range(3)]
    await store(database, client, "leads", ids)
    before = len(fake.calls("/api/v4/leads"))

    report = await verify(database, client)

    assert (3, 0, 0, 0) == summary(report)
    assert 1 == report.calls == len(fake.calls("/api/v4/leads")) - before
    async with database.read() as conn:
        assert sorted(ids) == sorted(
            (await conn.execute(select(verified.c.id).where(verified.c.entity == "leads")))
            .scalars()
            .all()
        )


async def test_change_without_a_webhook_is_found_and_repaired(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Name, price and status changed in amoCRM, no webhook: found, overwritten, re-read."""
    kept = fake.add_lead(name="kept")
    changed = fake.add_lead(name="before", price=100)
    await store(database, client, "leads", [kept["id"], changed["id"]])
    fake.update_lead(changed["id"], name="after", price=900, status_id=142)

    report = await verify(database, client)

    assert (2, 1, 1, 0) == summary(report)
    [example] = report.examples
    assert changed["id"] == example.id
    assert {"name", "price", "status_id", "updated_at"} <= set(example.fields)
    stored = await row(database, changed["id"])
    assert ("after", 900, 142) == (stored["name"], stored["price"], stored["status_id"])
    assert (2, 0, 0, 0) == summary(await verify(database, client))


async def test_rentprog_id_changed_in_amocrm_is_repaired(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    lead = fake.add_lead(custom_fields_values=[rentprog_field("81234")])
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], custom_fields_values=[rentprog_field("99999")])

    report = await verify(database, client)

    assert (1, 1, 1, 0) == summary(report)
    assert "rentprog_id" in report.examples[0].fields
    assert "99999" == (await row(database, lead["id"]))["rentprog_id"]


async def test_contacts_of_a_deal_are_compared_and_relinked(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    first = fake.add_contact(first_name="Анна")
    second = fake.add_contact(first_name="Борис")
    lead = fake.add_lead(contacts=[(first["id"], True)])
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], contacts=[(second["id"], True)])

    report = await verify(database, client)

    assert "contacts" in report.examples[0].fields
    async with database.read() as conn:
        links = (await conn.execute(select(deal_contacts.c.contact_id))).scalars().all()
    assert [second["id"]] == list(links)


@pytest.mark.parametrize("answer", [204, 404])
async def test_deleted_in_amocrm_is_confirmed_alone_then_flagged(
    database: Database, client: AmoClient, fake: FakeAmoState, answer: int
) -> None:
    """An id the batch leaves out is asked alone; 204 or 404 confirm the deletion."""
    kept = fake.add_lead()
    gone = fake.add_lead()
    await store(database, client, "leads", [kept["id"], gone["id"]])
    fake.delete_lead(gone["id"])
    if answer == 404:
        fake.script_faults(Fault(status=404), path_prefix=f"/api/v4/leads/{gone['id']}")

    report = await verify(database, client)

    assert (2, 1, 1, 0) == summary(report)
    assert ["is_deleted"] == report.examples[0].fields
    assert 2 == report.calls  # the batch, then the missing id alone
    assert [f"/api/v4/leads/{gone['id']}"] == [
        c.path for c in fake.calls(f"/api/v4/leads/{gone['id']}")
    ]
    assert (await row(database, gone["id"]))["is_deleted"] is True
    assert (await row(database, kept["id"]))["is_deleted"] is False


async def test_an_id_left_out_of_the_batch_is_not_taken_for_deleted(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """The list answer omits a live lead: the single-id GET returns it, nothing is flagged."""
    lead = fake.add_lead(name="lagging list")
    await store(database, client, "leads", [lead["id"]])
    fake.omitted_from_lists.add(lead["id"])

    report = await verify(database, client)

    assert (1, 0, 0, 0) == summary(report)
    assert 2 == report.calls
    assert (await row(database, lead["id"]))["is_deleted"] is False


async def test_ids_answered_as_strings_are_the_same_ids(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """amoCRM may write ids as JSON strings ("123"), in the list and in a single answer:
    they are the stored ids, compared (not asked alone, not left unconfirmed) and repaired."""
    kept, changed, left_out = (fake.add_lead(name=f"lead {n}")["id"] for n in range(3))
    await store(database, client, "leads", [kept, changed, left_out])
    fake.update_lead(changed, name="renamed in amoCRM")
    fake.omitted_from_lists.add(left_out)
    fake.string_ids = True

    report = await verify(database, client)

    assert (3, 1, 1, 0) == summary(report)
    assert (0, 2) == (report.unconfirmed, report.calls)
    assert "renamed in amoCRM" == (await row(database, changed))["name"]


async def test_stored_deletion_of_a_live_deal_is_undone(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Flagged deleted here, alive (same updated_at) in amoCRM: the normal upsert refuses
    that copy; the repair overwrites it."""
    lead = fake.add_lead(name="alive")
    await store(database, client, "leads", [lead["id"]])
    async with database.write() as conn:
        await mark_deals_deleted(conn, [lead["id"]], datetime.now(UTC))

    report = await verify(database, client)

    assert (1, 1, 1, 0) == summary(report)
    assert ["is_deleted"] == report.examples[0].fields
    assert (await row(database, lead["id"]))["is_deleted"] is False


async def test_stored_future_updated_at_is_overwritten(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """A bogus future updated_at would win every normal upsert; amoCRM's copy wins here."""
    lead = fake.add_lead(name="true name", price=500)
    await store(database, client, "leads", [lead["id"]])
    future = datetime.now(UTC) + timedelta(days=365)
    async with database.write() as conn:
        await conn.execute(
            update(deals)
            .where(deals.c.id == lead["id"])
            .values(updated_at=future, name="bogus", price=1)
        )

    report = await verify(database, client)

    assert (1, 1, 1, 0) == summary(report)
    assert {"updated_at", "name", "price"} == set(report.examples[0].fields)
    stored = await row(database, lead["id"])
    assert ("true name", 500) == (stored["name"], stored["price"])
    assert int(stored["updated_at"].timestamp()) == lead["updated_at"]


async def test_contact_divergence_is_repaired(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    person = fake.add_contact(first_name="Анна", phones=["+7 900 111-22-33"])
    await store(database, client, "contacts", [person["id"]])
    fake.update_contact(person["id"], first_name="Анна-Мария", phones=["+7 900 000-00-00"])

    report = await verify(database, client, "contacts")

    assert (1, 1, 1, 0) == summary(report)
    assert {"first_name", "phones"} <= set(report.examples[0].fields)
    async with database.read() as conn:
        assert ["+7 900 000-00-00"] == (
            await conn.scalar(select(contacts.c.phones).where(contacts.c.id == person["id"]))
        )


async def test_a_row_changed_meanwhile_is_not_overwritten(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """A row the worker rewrote after verification read it is left alone, not counted as
    unrepaired, and loses its verification time: it is checked first next time, before
    rows verified longer ago (so `verify.last` cannot look clean while it still differs)."""
    lead = fake.add_lead(name="v1")
    other = fake.add_lead(name="other")
    await store(database, client, "leads", [lead["id"], other["id"]])
    await Verifier(database, client, RENTPROG).verify("leads", [other["id"]])
    await Verifier(database, client, RENTPROG).verify("leads", [lead["id"]])  # the newer
    fake.update_lead(lead["id"], name="v2")
    verifier = Verifier(database, client, RENTPROG)
    real_read = verifier._read
    reads = 0

    async def read_then_worker_writes(entity: str, ids: Any) -> dict[int, dict[str, Any]]:
        nonlocal reads
        found = await real_read(entity, ids)
        reads += 1
        if reads == 1:  # between verification's read and its repair, the worker writes
            async with database.write() as conn:
                await conn.execute(
                    update(deals)
                    .where(deals.c.id == lead["id"])
                    .values(name="v3 from a webhook", synced_at=datetime.now(UTC))
                )
        return found

    verifier._read = read_then_worker_writes  # type: ignore[method-assign]
    report = await verifier.verify("leads", [lead["id"]])

    assert (1, 1, 0, 0, 1) == (*summary(report), report.changed_meanwhile)
    assert "v3 from a webhook" == (await row(database, lead["id"]))["name"]
    async with database.read() as conn:
        assert [lead["id"]] == await oldest_verified(conn, "leads", 1)


async def test_a_thousand_deals_cost_four_calls(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """The measured cost in docs/RELIABILITY.md: ceil(1000 / 250) = 4 calls per 1,000 deals."""
    ids = [fake.add_lead()["id"] for _ in range(1000)]
    await store(database, client, "leads", ids)
    before = len(fake.calls("/api/v4/leads"))

    report = await verify(database, client)

    assert (1000, 0, 0, 0) == summary(report)
    assert 4 == report.calls == len(fake.calls("/api/v4/leads")) - before


async def test_last_result_is_stored_in_the_health_contract_shape(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    from amosync.cli.verify import verify_rows

    lead = fake.add_lead(name="before")
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], name="after")

    report = await verify_rows(database, client, RENTPROG, ("leads", "contacts"), None)
    last = await read_last(database)

    assert last is not None
    assert (1, 1, 1, 0) == summary(report)
    assert (1, 1, 1, 0) == (last["checked"], last["diverged"], last["repaired"], last["unrepaired"])
    assert [{"entity": "leads", "id": lead["id"], "fields": last["examples"][0]["fields"]}] == (
        last["examples"]
    )
    assert datetime.fromisoformat(last["at"]).tzinfo is not None


async def test_a_deletion_both_sides_agree_on_costs_no_extra_call(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Deleted rows are kept forever: asking each alone would make `--all` cost one call
    per deleted deal. A row stored deleted that the batch leaves out already agrees."""
    lead = fake.add_lead()
    await store(database, client, "leads", [lead["id"]])
    fake.delete_lead(lead["id"])
    assert (1, 1, 1, 0) == summary(await verify(database, client))

    again = await verify(database, client)

    assert (1, 0, 0, 0) == summary(again)
    assert 1 == again.calls


async def test_a_repaired_deal_queues_a_linked_contact_never_stored(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Like the worker's apply path: a link to an unknown contact queues it for a fetch."""
    lead = fake.add_lead()
    await store(database, client, "leads", [lead["id"]])
    person = fake.add_contact(first_name="Новый")
    fake.update_lead(lead["id"], contacts=[(person["id"], True)])

    await verify(database, client)

    async with database.read() as conn:
        queued = (
            await conn.execute(
                select(webhook_events.c.entity, webhook_events.c.entity_id).where(
                    webhook_events.c.status == "pending"
                )
            )
        ).all()
    assert [("contacts", person["id"])] == [tuple(r) for r in queued]


@pytest.mark.parametrize(
    "value",
    [
        {"at": "yesterday", "checked": 1, "diverged": 0, "repaired": 0, "unrepaired": 0},
        {"at": "2026-12-07T02:00:00", "checked": 1, "diverged": 0, "repaired": 0, "unrepaired": 0},
        {"at": "2026-12-07T02:00:00+00:00", "checked": "1"},
    ],
)
async def test_an_unusable_stored_result_reads_as_none(
    database: Database, value: dict[str, Any]
) -> None:
    """Readers (/health, status, the page, /metrics) never trip over a bad `verify.last`."""
    async with database.write() as conn:
        await write_last(conn, value)

    assert await read_last(database) is None
