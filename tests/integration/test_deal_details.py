"""Custom-field values, tags and companies follow the stored copy, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select

from amosync.core.answer import map_answer
from amosync.core.field_values import TEXT_MAX, VALUES_PER_FIELD_MAX
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.tables import (
    companies,
    custom_fields,
    deal_companies,
    deal_tags,
    deals,
    field_values,
)
from amosync.db.tables import webhook_events as ev
from amosync.inbox import InboxStore
from amosync.testing import RENTPROG_FIELD_ID, FakeAmoState
from amosync.testing.fake_fields import (
    BIRTHDAY_FIELD_ID,
    CAR_CLASS_FIELD_ID,
    ISSUE_DATE_FIELD_ID,
    LINK_FIELD_ID,
    NOTE_FIELD_ID,
    OPTIONS_FIELD_ID,
    PAID_FIELD_ID,
    PHONE_FIELD_ID,
    RENT_PRICE_FIELD_ID,
    RENTAL_START_FIELD_ID,
    SOURCE_FIELD_ID,
    field_value,
)
from amosync.upsert import mark_deals_deleted
from amosync.worker.apply import apply_fetched
from tests.integration.test_worker import drain, event, make_worker, rows

RENTPROG = RentProgField(RENTPROG_FIELD_ID)
JUNE_12 = 1781222400  # 2026-06-12 00:00 UTC
JUNE_12_10AM = JUNE_12 + 10 * 3600


def lead_values(fake: FakeAmoState, **values: Any) -> list[dict[str, Any]]:
    """`custom_fields_values` of a lead: field id (as `f<id>`) → values, per the fake's
    definitions."""
    definitions = {d["id"]: d for d in fake.lead_custom_fields}
    items = [field_value(definitions[int(k[1:])], *v) for k, v in values.items()]
    return [i for i in items if i is not None]


async def store(database: Database, entity: str, *objects: dict[str, Any]) -> None:
    """Store these API objects as the worker does (one answer, one transaction)."""
    answer = map_answer(entity, [o["id"] for o in objects], list(objects), RENTPROG)
    async with database.write() as conn:
        await apply_fetched(conn, answer, [])


async def values_of(database: Database, entity_id: int, entity: str = "leads") -> list[Any]:
    fv = field_values.c
    query = (
        select(
            fv.field_id,
            fv.position,
            fv.value_text,
            fv.value_number,
            fv.value_datetime,
            fv.enum_id,
            fv.field_code,
        )
        .where(fv.entity_type == entity, fv.entity_id == entity_id)
        .order_by(fv.field_id, fv.position)
    )
    return await rows(database, query)


async def test_every_field_type_is_stored_typed(database: Database) -> None:
    """One row per value, typed by the field's type; every value keeps its text."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(
        custom_fields_values=lead_values(
            fake,
            **{
                f"f{SOURCE_FIELD_ID}": ["Авито"],
                f"f{RENTPROG_FIELD_ID}": ["RP-81234"],
                f"f{ISSUE_DATE_FIELD_ID}": [JUNE_12],
                f"f{RENT_PRICE_FIELD_ID}": [4500.5],
                f"f{PAID_FIELD_ID}": [True],
                f"f{CAR_CLASS_FIELD_ID}": ["Комфорт"],
                f"f{OPTIONS_FIELD_ID}": ["Детское кресло", "GPS"],
                f"f{RENTAL_START_FIELD_ID}": [JUNE_12_10AM],
                f"f{LINK_FIELD_ID}": ["https://example.com/contract/7"],
                f"f{NOTE_FIELD_ID}": ["Позвонить\nзаранее"],
            },
        )
    )

    await store(database, "leads", lead)

    june_12 = datetime(2026, 6, 12, tzinfo=UTC)
    assert [
        (RENTPROG_FIELD_ID, 0, "RP-81234", None, None, None, None),
        (SOURCE_FIELD_ID, 0, "Авито", None, None, None, None),
        (ISSUE_DATE_FIELD_ID, 0, str(JUNE_12), None, june_12, None, None),
        (RENT_PRICE_FIELD_ID, 0, "4500.5", 4500.5, None, None, None),
        (PAID_FIELD_ID, 0, "true", 1.0, None, None, None),
        (CAR_CLASS_FIELD_ID, 0, "Комфорт", None, None, CAR_CLASS_FIELD_ID * 10 + 1, None),
        (OPTIONS_FIELD_ID, 0, "Детское кресло", None, None, OPTIONS_FIELD_ID * 10, None),
        (OPTIONS_FIELD_ID, 1, "GPS", None, None, OPTIONS_FIELD_ID * 10 + 1, None),
        (
            RENTAL_START_FIELD_ID,
            0,
            str(JUNE_12_10AM),
            None,
            june_12.replace(hour=10),
            None,
            None,
        ),
        (LINK_FIELD_ID, 0, "https://example.com/contract/7", None, None, None, None),
        (NOTE_FIELD_ID, 0, "Позвонить\nзаранее", None, None, None, None),
    ] == await values_of(database, lead["id"])


async def test_contact_values_with_enum_codes_and_birthday(database: Database) -> None:
    """A contact's phones (multitext: several rows, enum codes) and birthday (before 1970)."""
    fake = FakeAmoState(rate_limit_rps=None)
    birthday = {
        "field_id": BIRTHDAY_FIELD_ID,
        "field_name": "День рождения",
        "field_code": None,
        "field_type": "birthday",
        "values": [{"value": -86400 * 365}],
    }
    contact = fake.add_contact(
        name="Ирина", phones=["+7 900 000-00-01", ("8 (495) 123-45-67", "MOB")]
    )
    contact["custom_fields_values"].append(birthday)

    await store(database, "contacts", contact)

    fv = field_values.c
    found = await rows(
        database,
        select(fv.field_id, fv.position, fv.value_text, fv.enum_code, fv.field_code)
        .where(fv.entity_id == contact["id"])
        .order_by(fv.field_id, fv.position),
    )
    assert [
        (PHONE_FIELD_ID, 0, "+7 900 000-00-01", "WORK", "PHONE"),
        (PHONE_FIELD_ID, 1, "8 (495) 123-45-67", "MOB", "PHONE"),
        (BIRTHDAY_FIELD_ID, 0, str(-86400 * 365), None, None),
    ] == found
    born = await rows(database, select(fv.value_datetime).where(fv.field_id == BIRTHDAY_FIELD_ID))
    assert [(datetime(1969, 1, 1, tzinfo=UTC),)] == born
    assert {("contacts",)} == set(await rows(database, select(fv.entity_type)))


async def test_type_comes_from_the_definition_then_the_entry_then_the_shape(
    database: Database,
) -> None:
    """amocrm_custom_fields decides the type when it knows the field; else the entry's
    `field_type`; else only an unambiguous JSON value (a number, a boolean)."""
    now = datetime.now(UTC)
    async with database.write() as conn:
        await conn.execute(
            insert(custom_fields),
            [{"entity_type": "leads", "id": 1, "type": "numeric", "raw": {}, "synced_at": now}],
        )
    lead = {
        "id": 5,
        "updated_at": 1_780_000_000,
        "custom_fields_values": [
            # The definition says numeric, the entry text: the definition wins.
            {"field_id": 1, "field_type": "text", "values": [{"value": "1 500,50"}]},
            # No definition: the entry's type.
            {"field_id": 2, "field_type": "date", "values": [{"value": "2026-06-12"}]},
            # Neither: a JSON number is a number, a boolean a checkbox, text stays text.
            {"field_id": 3, "values": [{"value": 7}, {"value": False}, {"value": "8"}]},
        ],
    }

    await store(database, "leads", lead)

    june_12 = datetime(2026, 6, 12, tzinfo=UTC)
    assert [
        (1, 0, "1 500,50", 1500.5, None, None, None),
        (2, 0, "2026-06-12", None, june_12, None, None),
        (3, 0, "7", 7.0, None, None, None),
        (3, 1, "false", 0.0, None, None, None),
        (3, 2, "8", None, None, None, None),
    ] == await values_of(database, 5)


async def test_newer_copy_replaces_values_tags_and_companies(database: Database) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    first = fake.add_company(name="ООО Прокат")
    second = fake.add_company(name="ИП Петров")
    lead = fake.add_lead(
        custom_fields_values=lead_values(
            fake, **{f"f{OPTIONS_FIELD_ID}": ["GPS", "Детское кресло"]}
        ),
        tags=["VIP", "Повторный"],
        companies=[first["id"]],
    )
    await store(database, "leads", lead)
    newer = fake.update_lead(
        lead["id"],
        custom_fields_values=lead_values(fake, **{f"f{CAR_CLASS_FIELD_ID}": ["Бизнес"]}),
        tags=["VIP"],
        companies=[second["id"]],
    )

    await store(database, "leads", newer)

    assert [(CAR_CLASS_FIELD_ID, "Бизнес")] == [
        (r[0], r[2]) for r in await values_of(database, lead["id"])
    ]
    assert [(lead["id"], "VIP")] == await rows(
        database, select(deal_tags.c.deal_id, deal_tags.c.name)
    )
    assert [(lead["id"], second["id"])] == await rows(database, select(deal_companies))


async def test_older_copy_leaves_values_tags_and_companies(database: Database) -> None:
    """A reordered, older copy is refused by newer-wins: what hangs off the deal stays."""
    fake = FakeAmoState(rate_limit_rps=None)
    company = fake.add_company()
    old = fake.add_lead(
        custom_fields_values=lead_values(fake, **{f"f{SOURCE_FIELD_ID}": ["старое"]}),
        tags=["старый"],
    )
    new = fake.update_lead(
        old["id"],
        custom_fields_values=lead_values(fake, **{f"f{SOURCE_FIELD_ID}": ["новое"]}),
        tags=["новый"],
        companies=[company["id"]],
    )
    await store(database, "leads", new)

    await store(database, "leads", old)
    await store(database, "leads", new)  # the same copy again: unchanged, nothing rewritten

    assert ["новое"] == [r[2] for r in await values_of(database, old["id"])]
    assert [("новый",)] == await rows(database, select(deal_tags.c.name))
    assert [(old["id"], company["id"])] == await rows(database, select(deal_companies))


async def test_deleted_deal_keeps_its_details_until_a_copy_says_otherwise(
    database: Database,
) -> None:
    """A proven deletion flags the row and keeps what hangs off it (readers filter on
    `is_deleted`); a trash stub stored later carries no fields, tags or companies, and
    the rows follow it like the deal's own columns do."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(
        custom_fields_values=lead_values(fake, **{f"f{SOURCE_FIELD_ID}": ["Авито"]}),
        tags=["VIP"],
        companies=[fake.add_company()["id"]],
    )
    await store(database, "leads", lead)
    async with database.write() as conn:
        await mark_deals_deleted(conn, [lead["id"]], datetime.now(UTC))

    assert 1 == len(await values_of(database, lead["id"]))
    assert 1 == len(await rows(database, select(deal_tags)))

    stub = fake.delete_lead(lead["id"])
    await store(database, "leads", stub)

    assert [(True,)] == await rows(database, select(deals.c.is_deleted))
    assert [] == await values_of(database, lead["id"])
    assert [] == await rows(database, select(deal_tags))
    assert [] == await rows(database, select(deal_companies))


async def test_unknown_company_is_fetched_like_a_linked_contact(database: Database) -> None:
    """A deal's company we do not have is queued and fetched in one batched call; one we
    have is not asked for again."""
    fake = FakeAmoState(rate_limit_rps=None)
    known = fake.add_company(name="Уже есть")
    new = fake.add_company(name="ООО Прокат", phones=["+7 495 000-00-00"])
    other = fake.add_company(name="ИП Петров")
    leads = [
        fake.add_lead(companies=[new["id"]]),
        fake.add_lead(companies=[other["id"]]),
        fake.add_lead(companies=[known["id"]]),
    ]
    await store(database, "companies", known)
    await InboxStore(database).append([event("leads", lead["id"], "add") for lead in leads])

    await drain(make_worker(database, fake))

    assert [(known["id"],), (new["id"],), (other["id"],)] == await rows(
        database, select(companies.c.id).order_by(companies.c.id)
    )
    assert 3 == len(await rows(database, select(deal_companies)))
    assert 1 == len(fake.calls("/api/v4/companies"))
    linked = select(ev.c.entity, ev.c.action, ev.c.status).where(ev.c.action == "linked")
    assert [("companies", "linked", "done")] * 2 == await rows(database, linked)


async def test_hostile_values_are_bounded_and_do_not_fail_the_batch(database: Database) -> None:
    """Whatever a lead's fields hold, it and the rest of its batch are stored; a value
    that fits no type stays text, sizes are bounded."""
    hostile = {
        "id": 7,
        "updated_at": 1_780_000_000,
        "custom_fields_values": [
            {"field_id": "not a number", "values": [{"value": "lost"}]},
            {"field_id": 10, "field_type": "numeric", "values": [{"value": "12abc"}]},
            {"field_id": 11, "field_type": "date", "values": [{"value": 10**15}]},
            {"field_id": 12, "field_type": "date_time", "values": [{"value": "yesterday"}]},
            {"field_id": 13, "field_type": "text", "values": [{"value": "я" * 100_000}]},
            {"field_id": 14, "field_type": "numeric", "values": [{"value": "1e400"}]},
            {"field_id": 15, "field_type": "multiselect", "values": [{"value": "x"}] * 10_000},
            {
                "field_id": 16,
                "field_type": "legal_entity",
                "values": [{"value": {"name": "ООО", "nested": [[[["deep"]]]]}}],
            },
            {"field_id": 17, "field_code": "C" * 10_000, "values": [{"enum_id": 5}]},
            {"field_id": 18, "values": "not a list"},
            {"field_id": 18, "values": [{"value": "a"}, None, {"value": None}]},
            "not an object",
            {"field_id": "99999999999999999999999", "values": [{"value": "beyond bigint"}]},
            {"field_id": 19, "field_type": "checkbox", "values": [{"value": "maybe"}]},
        ],
        "_embedded": {
            "tags": [{"id": 1, "name": "t" * 10_000}, {"id": "x"}, {"id": 1, "name": "dup"}, 5],
            "companies": [{"id": 3}, {"id": 3}, {"id": None}, "x"],
        },
    }
    fine = {
        "id": 8,
        "updated_at": 1_780_000_000,
        "custom_fields_values": [
            {"field_id": 10, "field_type": "numeric", "values": [{"value": "12"}]}
        ],
    }

    await store(database, "leads", hostile, fine)

    by_field: dict[int, list[Any]] = {}
    for row in await values_of(database, 7):
        by_field.setdefault(row[0], []).append(row)
    assert by_field[10] == [(10, 0, "12abc", None, None, None, None)]
    assert by_field[11][0][4] is None  # beyond year 9999
    assert by_field[12][0][4] is None
    assert len(by_field[13][0][2]) == TEXT_MAX
    assert by_field[14][0][3] is None  # beyond a double: text only
    assert len(by_field[15]) == VALUES_PER_FIELD_MAX
    assert by_field[16][0][2] == '{"name":"ООО","nested":[[[["deep"]]]]}'
    assert by_field[17] == [(17, 0, None, None, None, 5, "C" * 255)]
    assert [r[2] for r in by_field[18]] == ["a"]
    assert by_field[19] == [(19, 0, "maybe", None, None, None, None)]
    assert set(by_field) == {10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
    assert [(10, 0, "12", 12.0, None, None, None)] == await values_of(database, 8)
    tags = await rows(database, select(deal_tags.c.tag_id, deal_tags.c.name))
    assert [(1, "t" * 512)] == tags
    assert [(7, 3)] == await rows(database, select(deal_companies))


async def test_unchanged_values_are_not_rewritten(database: Database) -> None:
    """A copy that changes the price only leaves the deal's value, tag and company rows
    alone: nothing is deleted or inserted there (most edits in amoCRM are like this)."""
    fake = FakeAmoState(rate_limit_rps=None)
    values = {
        f"f{RENTAL_START_FIELD_ID}": [JUNE_12_10AM],
        f"f{RENT_PRICE_FIELD_ID}": [4500.5],
        f"f{PAID_FIELD_ID}": [False],
        f"f{OPTIONS_FIELD_ID}": ["GPS", "Детское кресло"],
    }
    lead = fake.add_lead(
        custom_fields_values=lead_values(fake, **values),
        tags=["VIP"],
        companies=[fake.add_company()["id"]],
    )
    await store(database, "leads", lead)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    for sync_engine in database.sync_engines():
        sa_event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        await store(database, "leads", fake.update_lead(lead["id"], price=9000))
    finally:
        for sync_engine in database.sync_engines():
            sa_event.remove(sync_engine, "before_cursor_execute", seen)

    assert [(9000,)] == await rows(database, select(deals.c.price))
    owned = ("amocrm_field_values", "amocrm_deal_tags", "amocrm_deal_companies")
    writes = [
        s for s in statements if s.startswith(("DELETE", "INSERT")) and any(t in s for t in owned)
    ]
    assert [] == writes
    assert 5 == len(await values_of(database, lead["id"]))
