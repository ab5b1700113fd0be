"""Reading without amoCRM: names on deals, filters, search, pipelines with counts, users.

Real app, real worker, the fake amoCRM; both databases (the `engine` fixture)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.settings import Settings
from amosync.testing import FakeAmoState
from amosync.testing.fake_fields import DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, DEFAULT_USER_ID
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
    fake.update_contact(
        contact_id, name="ИРИНА Петрова", phones=[("8 (912) 345-67-89", "MOB")]
    )
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


async def test_a_deal_carries_the_names_of_its_ids(settings: Settings, engine: AsyncEngine) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, engine, fake, SECRET_PATH)
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


async def test_filters_narrow_the_feed(settings: Settings, engine: AsyncEngine) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, engine, fake, SECRET_PATH)
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
        ("?", []),
        ("_", []),  # GLOB and regex characters are plain text
        ("?", []),
        ("_", []),
        ("?", []),
        ("_", []),
    ],
)
async def test_q_searches_names_ids_contacts_and_phones(
    settings: Settings, engine: AsyncEngine, q: str, which: list[int]
) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, engine, fake, SECRET_PATH)
        found = await ids_for(client, q=q)

    assert sorted(ids[i] for i in which) == sorted(found)


async def test_q_finds_by_deal_id_and_combines_with_filters(
    settings: Settings, engine: AsyncEngine
) -> None:
    fake, ids = rental_fake()
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, engine, fake, SECRET_PATH)
        by_id = await ids_for(client, q=str(ids[2]))
        combined = await ids_for(client, q="клиент", status_id="143")
        paged = await client.get("/api/deals", params={"q": "клиент", "limit": "2"}, headers=AUTH)
        bad = await client.get("/api/deals", params={"q": "   "}, headers=AUTH)

    assert [ids[2]] == by_id
    assert [ids[4]] == combined
    assert 2 == len(paged.json()["deals"]) and paged.json()["next"]
    assert 400 == bad.status_code


async def test_pipelines_list_stages_with_current_deal_counts(
    settings: Settings, engine: AsyncEngine
) -> None:
    fake, ids = rental_fake()
    fake.delete_lead(ids[2])
    async with api(settings, fake) as client:
        await seed_through_pipeline(client, engine, fake, SECRET_PATH)
        await wait_for_names(client)
        answer = (await client.get("/api/pipelines", headers=AUTH)).json()["pipelines"]

    by_name = {p["name"]: p for p in answer}
    main = by_name["Воронка"]
    stages = {s["name"]: (s["id"], s["kind"], s["deals"]) for s in main["statuses"]}
    assert (DEFAULT_PIPELINE_ID, 3) == (main["id"], main["deals"])  # the deleted one is not
    assert (DEFAULT_STATUS_ID, "open", 2) == stages["Первичный контакт"]
    assert (143, "lost", 1) == stages["Закрыто и не реализовано"]
    assert (142, "won", 0) == stages["Успешно реализовано"]
    assert [s["name"] for s in main["statuses"]][0] == "Неразобранное"  # amoCRM's order
    assert 1 == by_name["Аренда"]["deals"]


async def test_users_are_listed_by_name(settings: Settings, engine: AsyncEngine) -> None:
    fake, _ = rental_fake()
    async with api(settings, fake) as client:
        await wait_for_names(client)
        answer = (await client.get("/api/users", headers=AUTH)).json()["users"]

    shown: list[dict[str, Any]] = answer
    assert [(DEFAULT_USER_ID, "Анна Админова"), (SECOND_USER_ID, "Борис Менеджеров")] == [
        (u["id"], u["name"]) for u in shown
    ]
    assert shown[0]["is_admin"] and not shown[1]["is_admin"]
