"""Reading without amoCRM: names on deals, filters, search, pipelines with counts, users.

Real app, real worker, the fake amoCRM; both databases (the `database` fixture)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from amosync.db.database import Database
from amosync.db.tables import deal_stage_history
from amosync.settings import Settings
from amosync.testing import FakeAmoState
from amosync.testing.fake_fields import (
    DEFAULT_PIPELINE_ID,
    DEFAULT_STATUS_ID,
    DEFAULT_USER_ID,
    RENTPROG_FIELD_ID,
    field_value,
)
from amosync.testing.fake_reference import (
    LOSS_REASON_ID,
    SECOND_PIPELINE_ID,
    SECOND_STATUS_ID,
    SECOND_USER_ID,
)
from tests.integration.test_read_api import ADMIN, AUTH, SECRET_PATH, api
from tests.live_app import demo_fake, seed_through_pipeline


@pytest.fixture
def settings(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The reference refresh runs at once (in service it waits 30 s for the backlog)."""
    monkeypatch.setattr("amosync.reference.job.FIRST_RUN_DELAY", 0.0)
    return make_settings(admin_token=ADMIN, max_attempts=1)


def rental_fake() -> tuple[FakeAmoState, list[int]]:
    """Five demo deals; the 2nd in "Аренда/Бронь" with Борис, the 5th lost as too expensive,
    the 4th's client named in capitals with a phone typed the Russian way."""
    fake = demo_fake(5)
    ids = sorted(fake.table("leads"))
    fake.update_lead(
        ids[1],
        pipeline_id=SECOND_PIPELINE_ID,
        status_id=SECOND_STATUS_ID,
        responsible_user_id=SECOND_USER_ID,
    )
    fake.update_lead(ids[4], status_id=143, loss_reason_id=LOSS_REASON_ID)
    contact_id = fake.table("leads")[ids[3]].contacts[0][0]
    fake.update_contact(contact_id, name="ИРИНА Петрова", phones=[("8 (912) 345-67-89", "MOB")])
    return fake, ids


async def wait_for_names(client: httpx.AsyncClient) -> None:
    """The worker fetches the reference data at start; wait until it is stored."""
    deadline = time.monotonic() + 20
    while True:
        pipelines = (await client.get("/api/pipelines", headers=AUTH)).json()["pipelines"]
        if any(p["name"] for p in pipelines):
            return
        assert time.monotonic() < deadline, "reference data never stored"
        await asyncio.sleep(0.05)


async def ids_for(client: httpx.AsyncClient, **params: str) -> list[int]:
    answer = await client.get("/api/deals", params=params, headers=AUTH)
    assert 200 == answer.status_code, answer.text
    return [d["id"] for d in answer.json()["deals"]]


async def test_a_deal_carries_the_names_of_its_ids(settings: Settings, database: Database) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        await wait_for_names(client)
        booked = (await client.get(f"/api/deals/{ids[1]}", headers=AUTH)).json()
        lost = (await client.get(f"/api/deals/{ids[4]}", headers=AUTH)).json()

    assert {"id": SECOND_PIPELINE_ID, "name": "Аренда"} == booked["pipeline"]
    assert {"id": SECOND_STATUS_ID, "name": "Бронь", "kind": "open"} == booked["status"]
    assert {"id": SECOND_USER_ID, "name": "Борис Менеджеров"} == booked["responsible_user"]
    assert None is booked["loss_reason"]
    assert {"id": 143, "name": "Закрыто и не реализовано", "kind": "lost"} == lost["status"]
    assert {"id": LOSS_REASON_ID, "name": "Дорого"} == lost["loss_reason"]
    assert {"id": DEFAULT_USER_ID, "name": "Анна Админова"} == lost["responsible_user"]


async def test_filters_narrow_the_feed(settings: Settings, database: Database) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        by_pipeline = await ids_for(client, pipeline_id=str(SECOND_PIPELINE_ID))
        by_stage = await ids_for(client, status_id=str(DEFAULT_STATUS_ID))
        by_both = await ids_for(
            client, pipeline_id=str(DEFAULT_PIPELINE_ID), status_id=str(SECOND_STATUS_ID)
        )
        by_manager = await ids_for(client, responsible_user_id=str(SECOND_USER_ID))
        lost = await ids_for(client, status_id="143")

    assert [ids[1]] == by_pipeline
    assert sorted([ids[0], ids[2], ids[3]]) == sorted(by_stage)
    assert [] == by_both
    assert [ids[1]] == by_manager
    assert [ids[4]] == lost


@pytest.mark.parametrize(
    ("q", "which"),
    [
        ("аренда #3", [2]),  # deal name, another case (Cyrillic)
        ("rp-1002", [1]),  # RentProg ID, another case
        ("ирина", [3]),  # contact name typed in capitals, searched in lower case
        ("Ирина ПЕТРОВА", [3]),
        ("CLIENT5@EXAMPLE.COM", [4]),  # e-mail
        ("+7 912 345 67 89", [3]),  # phone typed "8 (912) 345-67-89"
        ("89123456789", [3]),
        ("345-67-89", [3]),  # part of a phone
        ("79000000002", [1]),  # stored +79000000002
        ("Клиент", [0, 1, 2, 4]),  # contact names "Клиент N"
        ("нет такого", []),
        ("*", []),  # GLOB, regex and LIKE characters are plain text
        ("[", []),
        ("?", []),
        ("_", []),
        ("%", []),
    ],
)
async def test_q_searches_names_ids_contacts_and_phones(
    settings: Settings, database: Database, q: str, which: list[int]
) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        found = await ids_for(client, q=q)

    assert sorted(ids[i] for i in which) == sorted(found)


async def test_q_finds_by_deal_id_and_combines_with_filters(
    settings: Settings, database: Database
) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        by_id = await ids_for(client, q=str(ids[2]))
        combined = await ids_for(client, q="клиент", status_id="143")
        paged = await client.get("/api/deals", params={"q": "клиент", "limit": "2"}, headers=AUTH)
        bad = await client.get("/api/deals", params={"q": "   "}, headers=AUTH)

    assert [ids[2]] == by_id
    assert [ids[4]] == combined
    assert 2 == len(paged.json()["deals"])
    assert paged.json()["next"]
    assert 400 == bad.status_code


async def test_pipelines_list_stages_with_current_deal_counts(
    settings: Settings, database: Database
) -> None:
    fake, ids = rental_fake()
    fake.delete_lead(ids[2])
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        await wait_for_names(client)
        answer = (await client.get("/api/pipelines", headers=AUTH)).json()["pipelines"]

    by_name = {p["name"]: p for p in answer}
    main = by_name["Воронка"]
    stages = {s["name"]: (s["id"], s["kind"], s["deals"]) for s in main["statuses"]}
    assert (DEFAULT_PIPELINE_ID, 3) == (main["id"], main["deals"])  # the deleted one is not
    assert (DEFAULT_STATUS_ID, "open", 2) == stages["Первичный контакт"]
    assert (143, "lost", 1) == stages["Закрыто и не реализовано"]
    assert (142, "won", 0) == stages["Успешно реализовано"]
    assert next(s["name"] for s in main["statuses"]) == "Неразобранное"  # amoCRM's order
    assert 1 == by_name["Аренда"]["deals"]


async def test_users_are_listed_by_name(settings: Settings, database: Database) -> None:
    fake, _ = rental_fake()
    async with api(settings, fake) as client:
        await wait_for_names(client)
        answer = (await client.get("/api/users", headers=AUTH)).json()["users"]

    shown: list[dict[str, Any]] = answer
    assert [(DEFAULT_USER_ID, "Анна Админова"), (SECOND_USER_ID, "Борис Менеджеров")] == [
        (u["id"], u["name"]) for u in shown
    ]
    assert shown[0]["is_admin"]
    assert not shown[1]["is_admin"]


def _definition(fake: FakeAmoState, name: str) -> dict[str, Any]:
    return next(f for f in fake.lead_custom_fields if f["name"] == name)


async def test_a_deal_has_fields_by_name_tags_and_companies(
    settings: Settings, database: Database
) -> None:
    fake, ids = rental_fake()
    values = [
        field_value(_definition(fake, name), *given)
        for name, given in (
            ("RentProg ID", ["RP-1003"]),
            ("Дата выдачи", [1781222400]),  # 2026-06-12 00:00 UTC
            ("Стоимость аренды", [4500]),
            ("Оплачено", [True]),
            ("Класс авто", ["Комфорт"]),
            ("Опции", ["GPS", "Детское кресло"]),
        )
    ]
    fake.update_lead(ids[2], custom_fields_values=values, tags=["VIP", "fake"])
    async with api(settings, fake) as client:
        await wait_for_names(client)  # the field definitions first: they name the fields
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        deal = (await client.get(f"/api/deals/{ids[2]}", headers=AUTH)).json()
        plain = (await client.get(f"/api/deals/{ids[0]}", headers=AUTH)).json()

    fields = deal["fields"]
    assert {"id": RENTPROG_FIELD_ID, "code": None, "type": "text", "value": "RP-1003"} == fields[
        "RentProg ID"
    ]
    assert "2026-06-12T00:00:00+00:00" == fields["Дата выдачи"]["value"]
    assert 4500 == fields["Стоимость аренды"]["value"]
    assert True is fields["Оплачено"]["value"]
    assert ("select", "Комфорт") == (fields["Класс авто"]["type"], fields["Класс авто"]["value"])
    assert ["GPS", "Детское кресло"] == fields["Опции"]["values"]
    assert ["VIP", "fake"] == sorted(t["name"] for t in deal["tags"])
    (company,) = deal["companies"]
    assert (True, "ООО Прокат", ["+74950000000"]) == (
        company["stored"],
        company["name"],
        company["phones"],
    )
    assert [] == plain["companies"]
    assert ["fake"] == [t["name"] for t in plain["tags"]]


async def test_history_gives_each_stage_its_time(settings: Settings, database: Database) -> None:
    """Rows as the upsert and catch-up write them; names joined; the last stage counts on."""
    fake, ids = rental_fake()
    start = datetime.now(UTC) - timedelta(hours=5)
    rows = [
        (DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, None, None, start, None, "first_seen", None),
        (
            SECOND_PIPELINE_ID,
            SECOND_STATUS_ID,
            DEFAULT_PIPELINE_ID,
            DEFAULT_STATUS_ID,
            start + timedelta(hours=2),
            SECOND_USER_ID,
            "events_api",
            "01JEVENT0000000000000001",
        ),
        (
            SECOND_PIPELINE_ID,
            142,
            SECOND_PIPELINE_ID,
            SECOND_STATUS_ID,
            start + timedelta(hours=4),
            None,
            "observed",
            None,
        ),
    ]
    unstored = 424242
    async with database.write() as conn:
        await conn.execute(
            insert(deal_stage_history),
            [
                {
                    "deal_id": unstored,
                    "pipeline_id": p,
                    "status_id": s,
                    "from_pipeline_id": fp,
                    "from_status_id": fs,
                    "changed_at": at,
                    "changed_by": by,
                    "source": source,
                    "amocrm_event_id": event,
                }
                for p, s, fp, fs, at, by, source, event in rows
            ],
        )
    async with api(settings, fake) as client:
        await wait_for_names(client)
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        history = (await client.get(f"/api/deals/{unstored}/history", headers=AUTH)).json()
        stored = await client.get(f"/api/deals/{ids[0]}/history", headers=AUTH)
        missing = await client.get("/api/deals/434343/history", headers=AUTH)

    first, moved, won = history["transitions"]
    assert ("first_seen", "Первичный контакт", None, 7200.0) == (
        first["source"],
        first["status"]["name"],
        first["from_status"],
        first["seconds_in_stage"],
    )
    assert {"id": SECOND_STATUS_ID, "name": "Бронь", "kind": "open"} == moved["status"]
    assert {"id": DEFAULT_STATUS_ID, "name": "Первичный контакт", "kind": "open"} == moved[
        "from_status"
    ]
    assert {"id": SECOND_USER_ID, "name": "Борис Менеджеров"} == moved["changed_by"]
    assert 7200.0 == moved["seconds_in_stage"]
    assert ("won", None) == (won["status"]["kind"], won["left_at"])
    assert 3600 <= won["seconds_in_stage"] < 3700  # still there: counted up to now
    assert [7200.0, 7200.0] == [t["seconds"] for t in history["time_in_stages"][:2]]
    assert [False, False, True] == [t["current"] for t in history["time_in_stages"]]
    assert 200 == stored.status_code
    assert 404 == missing.status_code


async def test_history_of_a_move_seen_through_the_pipeline(
    settings: Settings, database: Database
) -> None:
    """No row written by hand: a deal stored, then moved in amoCRM and its webhook processed,
    has its first stage and the move, the first stage with the time it lasted."""
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await wait_for_names(client)
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        fake.update_lead(ids[0], pipeline_id=SECOND_PIPELINE_ID, status_id=SECOND_STATUS_ID)
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        history = (await client.get(f"/api/deals/{ids[0]}/history", headers=AUTH)).json()

    first, moved = history["transitions"]
    assert ("first_seen", "Первичный контакт") == (first["source"], first["status"]["name"])
    assert moved["source"] in ("observed", "events_api")
    assert ("Аренда", "Бронь") == (moved["pipeline"]["name"], moved["status"]["name"])
    assert "Первичный контакт" == moved["from_status"]["name"]
    assert first["left_at"] == moved["changed_at"]
    assert first["seconds_in_stage"] >= 0
    assert None is moved["left_at"]
