"""One entity whose JSON is over AMOSYNC_API_MAX_ANSWER_BYTES never stalls catch-up,
backfill or verify: its page is asked for again in smaller pieces, the entity alone is
skipped past and recorded as a failed event with the reason (SQLite, PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from amosync.amocrm import AmoClient
from amosync.catchup.backfill import Backfill
from amosync.catchup.budget import CATCHUP, ApiBudget
from amosync.catchup.reconcile import entity_key
from amosync.catchup.state import load
from amosync.catchup.verify import Verifier
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.tables import contacts, deals
from amosync.db.tables import webhook_events as ev
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import RENTPROG_FIELD_ID, FakeAmoState, create_fake_amocrm
from tests.integration.test_catchup import reconciler, rows

MIB = 1024 * 1024
Factory = Callable[..., Settings]


def _fake() -> FakeAmoState:
    return FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)


def _client(
    make_settings: Factory, database: Database, fake: FakeAmoState, **tuned: Any
) -> AmoClient:
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    return build_client(make_settings(**tuned), database, purpose=CATCHUP, transport=transport)


def _huge(size: int) -> list[dict[str, Any]]:
    """A text custom field holding `size` characters: what makes a real lead's JSON huge
    (names are short in amoCRM; notes pasted into a textarea field are not)."""
    return [{"field_id": 700001, "field_name": "Заметки", "values": [{"value": "ж" * size}]}]


async def _failed(database: Database) -> list[tuple[Any, ...]]:
    return await rows(
        database,
        select(ev.c.entity, ev.c.entity_id, ev.c.last_error).where(ev.c.status == "failed"),
    )


async def test_one_oversize_lead_among_many_does_not_stall_catchup(
    database: Database, make_settings: Factory
) -> None:
    """A tuned 1 MiB cap: 300 leads (two pages), one of them 2 MiB in the second page."""
    fake = _fake()
    client = _client(make_settings, database, fake, api_max_answer_bytes=MIB)
    await reconciler(database, client).run()
    leads = [fake.add_lead(name=f"lead {n}") for n in range(300)]
    ids = [lead["id"] for lead in leads]
    big = ids[260]
    edited = fake.update_lead(big, custom_fields_values=_huge(2 * MIB))
    newest = max(edited["updated_at"], *(lead["updated_at"] for lead in leads))

    report = await reconciler(database, client).run()

    assert report.complete
    assert set(ids) - {big} == {r[0] for r in await rows(database, select(deals.c.id))}
    state = await load(database, entity_key("leads"))
    assert state is not None
    assert state["watermark"] >= newest
    [(entity, entity_id, error)] = await _failed(database)
    assert ("leads", big) == (entity, entity_id)
    assert "larger than 1048576 bytes" in error
    # Smaller pages only around the big lead: not one call per lead.
    first = len(fake.calls("/api/v4/leads"))  # the first run, the 1st page, the 2nd
    assert first <= 1 + 1 + 18, first

    again = await reconciler(database, client).run()

    assert again.complete
    assert 1 == len(await _failed(database))  # recorded once, not once per run
    # Re-read inside the overlap, the page is split again: no more than the first time.
    assert len(fake.calls("/api/v4/leads")) - first <= first - 1
    await client.aclose()


async def test_the_default_cap_skips_a_truly_oversize_lead(
    database: Database, make_settings: Factory
) -> None:
    """The 32 MiB default, with a lead over it: the others are stored, the run completes."""
    fake = _fake()
    client = _client(make_settings, database, fake)
    await reconciler(database, client).run()
    small = [fake.add_lead(name=f"lead {n}")["id"] for n in range(4)]
    big = fake.add_lead(custom_fields_values=_huge(17 * MIB))["id"]  # 2 bytes a character
    later = fake.add_lead(name="after the big one")["id"]

    report = await reconciler(database, client).run()

    assert report.complete
    assert {*small, later} == {r[0] for r in await rows(database, select(deals.c.id))}
    [(_, entity_id, error)] = await _failed(database)
    assert big == entity_id
    assert "larger than 33554432 bytes" in error
    await client.aclose()


async def test_an_oversize_contact_is_skipped_past_too(
    database: Database, make_settings: Factory
) -> None:
    fake = _fake()
    client = _client(make_settings, database, fake, api_max_answer_bytes=256 * 1024)
    await reconciler(database, client).run()
    people = [fake.add_contact(first_name=f"Анна {n}")["id"] for n in range(20)]
    big = people[0]
    fake.update_contact(big, custom_fields_values=_huge(300_000))

    report = await reconciler(database, client).run()

    assert report.complete
    assert set(people) - {big} == {r[0] for r in await rows(database, select(contacts.c.id))}
    assert [("contacts", big)] == [r[:2] for r in await _failed(database)]
    await client.aclose()


async def test_backfill_skips_an_oversize_lead_and_finishes(
    database: Database, make_settings: Factory
) -> None:
    fake = _fake()
    client = _client(make_settings, database, fake, api_max_answer_bytes=256 * 1024)
    ids = [fake.add_lead(name=f"lead {n}")["id"] for n in range(40)]
    big = ids[-1]  # the last one: nothing after it tells where the list ends
    fake.update_lead(big, custom_fields_values=_huge(300_000))
    backfill = Backfill(
        database, client, ApiBudget(database, 1000, 500), RentProgField(RENTPROG_FIELD_ID)
    )

    report = await backfill.run(("leads",))

    assert report.stopped is None
    assert set(ids) - {big} == {r[0] for r in await rows(database, select(deals.c.id))}
    assert [("leads", big)] == [r[:2] for r in await _failed(database)]
    await client.aclose()


async def test_verify_checks_the_rest_when_one_lead_is_oversize(
    database: Database, make_settings: Factory
) -> None:
    fake = _fake()
    client = _client(make_settings, database, fake, api_max_answer_bytes=256 * 1024)
    await reconciler(database, client).run()
    ids = [fake.add_lead(name=f"lead {n}")["id"] for n in range(10)]
    await reconciler(database, client).run()
    big = ids[3]
    fake.update_lead(big, custom_fields_values=_huge(300_000))
    verifier = Verifier(database, client, RentProgField(RENTPROG_FIELD_ID))

    report = await verifier.verify("leads", ids)

    assert 9 == report.checked
    assert 0 == report.diverged  # the big lead is not taken for deleted
    assert [("leads", big)] == [r[:2] for r in await _failed(database)]
    await client.aclose()


@pytest.mark.parametrize("position", [100, 260])
@pytest.mark.parametrize("named", [True, False], ids=["dated", "undated"])
async def test_an_oversize_lead_inside_one_busy_second_skips_nothing_else(
    database: Database, make_settings: Factory, position: int, named: bool
) -> None:
    """300 leads share one updated_at second (a bulk import), so the walk pages within that
    second. `undated`: the lead's huge name pushes its dates out of the refused answer's
    head; the walk must then re-read the second rather than jump it."""
    second = int(time.time()) - 5
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: second)
    client = _client(make_settings, database, fake, api_max_answer_bytes=MIB)
    await reconciler(database, client).run()
    huge: dict[str, Any] = (
        {"custom_fields_values": _huge(2 * MIB)} if named else {"name": "b" * (2 * MIB)}
    )
    ids = [
        fake.add_lead(**(huge if n == position else {"name": f"lead {n}"}))["id"]
        for n in range(300)
    ]

    report = await reconciler(database, client).run()

    assert report.complete
    big = ids[position]
    assert set(ids) - {big} == {r[0] for r in await rows(database, select(deals.c.id))}
    assert [("leads", big)] == [r[:2] for r in await _failed(database)]
    assert len(fake.calls("/api/v4/leads")) <= 1 + 2 * (1 + 18) + 1
