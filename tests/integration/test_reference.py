"""Reference data (pipelines, stages, users, field definitions, loss reasons) and the named
view of deals, against the fake amoCRM on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Table, func, insert, select, text

from amosync.amocrm import AmoClient
from amosync.catchup.budget import REFERENCE
from amosync.db import migrate
from amosync.db.database import Database
from amosync.db.engine import create_sync_engine
from amosync.db.tables import (
    api_requests,
    contacts,
    custom_fields,
    deal_contacts,
    deals,
    loss_reasons,
    pipelines,
    statuses,
    users,
)
from amosync.reference.job import TICK, ReferenceRefresher, reference_refresher
from amosync.services import build_client, periodic_jobs
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.testing.fake_fields import (
    DEFAULT_PIPELINE_ID,
    DEFAULT_STATUS_ID,
    DEFAULT_USER_ID,
    STATUS_LOST,
    STATUS_WON,
)
from amosync.testing.fake_reference import (
    LOSS_REASON_ID,
    SECOND_PIPELINE_ID,
    SECOND_USER_ID,
    pipeline,
    stage,
    user,
)
from tests.integration.test_verify import store

Factory = Callable[..., Settings]


@pytest.fixture
def fake() -> FakeAmoState:
    return FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)


@pytest.fixture
async def clients(
    make_settings: Factory, database: Database, fake: FakeAmoState
) -> AsyncIterator[tuple[AmoClient, AmoClient]]:
    """A client storing deals (logged as webhook calls) and the refresher's own."""
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    settings = make_settings()
    loader = build_client(settings, database, purpose="webhook", transport=transport)
    checker = build_client(settings, database, purpose=REFERENCE, transport=transport)
    yield loader, checker
    await loader.aclose()
    await checker.aclose()


@pytest.fixture
def refresher(
    make_settings: Factory, database: Database, clients: tuple[AmoClient, AmoClient]
) -> ReferenceRefresher:
    return reference_refresher(make_settings(), database, clients[1])


async def rows(database: Database, table: Table, *order: str) -> list[dict[str, Any]]:
    async with database.read() as conn:
        found = await conn.execute(select(table).order_by(*(table.c[o] for o in order)))
    return [dict(r._mapping) for r in found]


async def reference_calls(database: Database) -> int:
    async with database.read() as conn:
        n = await conn.scalar(
            select(func.count())
            .select_from(api_requests)
            .where(api_requests.c.purpose == REFERENCE)
        )
    return int(n or 0)


async def test_refresh_fills_every_table(
    database: Database, fake: FakeAmoState, refresher: ReferenceRefresher
) -> None:
    """One refresh: 6 requests (pipelines, users, 3 field lists, loss reasons), every table
    filled, stages 142/143 stored once per pipeline."""
    result = await refresher.run()

    assert result is not None
    assert ("first", "ok", "ok") == (result["reason"], result["users"], result["loss_reasons"])
    assert 6 == len(fake.calls("/api/v4/")) == await reference_calls(database)
    pipes = await rows(database, pipelines, "id")
    assert [(DEFAULT_PIPELINE_ID, "Воронка", True), (SECOND_PIPELINE_ID, "Аренда", False)] == [
        (p["id"], p["name"], p["is_main"]) for p in pipes
    ]
    stages = {(s["pipeline_id"], s["id"]): s for s in await rows(database, statuses, "id")}
    assert 7 == len(stages)
    for pipe in (DEFAULT_PIPELINE_ID, SECOND_PIPELINE_ID):
        assert (pipe, STATUS_WON) in stages
        assert (pipe, STATUS_LOST) in stages
    assert "Первичный контакт" == stages[(DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID)]["name"]
    assert 1 == stages[(DEFAULT_PIPELINE_ID, 47000000)]["type"]
    people = await rows(database, users, "id")
    assert [
        (DEFAULT_USER_ID, "Анна Админова", True, True),
        (SECOND_USER_ID, "Борис Менеджеров", False, True),
    ] == [(u["id"], u["name"], u["is_admin"], u["is_active"]) for u in people]
    fields = await rows(database, custom_fields, "entity_type", "id")
    by_kind = {
        k: [f for f in fields if f["entity_type"] == k] for k in ("leads", "contacts", "companies")
    }
    assert (10, 3, 2) == tuple(len(v) for v in by_kind.values())
    phone = next(f for f in by_kind["contacts"] if f["code"] == "PHONE")
    assert ("multitext", 6) == (phone["type"], len(phone["enums"]))
    assert {"id", "value", "sort"} == set(phone["enums"][0])
    reasons = await rows(database, loss_reasons, "id")
    assert ["Дорого", "Не дозвонились"] == [r["name"] for r in reasons]
    assert not any(r["is_deleted"] for r in [*pipes, *stages.values(), *people, *fields, *reasons])


async def test_renamed_in_place_vanished_flagged_and_back(
    database: Database, fake: FakeAmoState, refresher: ReferenceRefresher
) -> None:
    """A renamed stage keeps its row; a removed user and field stay, flagged; untouched rows
    keep their synced_at; a user listed again is unflagged."""
    await refresher.run()
    before = {(s["pipeline_id"], s["id"]): s for s in await rows(database, statuses, "id")}
    ref = fake.reference
    ref.pipelines[0]["_embedded"]["statuses"][1]["name"] = "Переговоры"
    gone_user = ref.users.pop()
    ref.contact_custom_fields.pop()

    await refresher.run(force=True)

    after = {(s["pipeline_id"], s["id"]): s for s in await rows(database, statuses, "id")}
    assert before.keys() == after.keys()
    assert "Переговоры" == after[(DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID)]["name"]
    renamed = after[(DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID)]["synced_at"]
    assert renamed > before[(DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID)]["synced_at"]
    won = (SECOND_PIPELINE_ID, STATUS_WON)
    assert before[won]["synced_at"] == after[won]["synced_at"]
    people = {u["id"]: u for u in await rows(database, users, "id")}
    assert people[gone_user["id"]]["is_deleted"] is True
    assert people[DEFAULT_USER_ID]["is_deleted"] is False
    fields = await rows(database, custom_fields, "entity_type", "id")
    assert 1 == sum(1 for f in fields if f["is_deleted"])
    assert 15 == len(fields)

    ref.users.append(gone_user)
    await refresher.run(force=True)
    people = {u["id"]: u for u in await rows(database, users, "id")}
    assert people[gone_user["id"]]["is_deleted"] is False


async def test_users_forbidden_is_no_names_not_a_failure(
    database: Database,
    fake: FakeAmoState,
    refresher: ReferenceRefresher,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """A non-admin token (403 on /users): everything else is stored, no user, and the 403
    does not block the shared limiter (the next call goes out at once)."""
    fake.reference.users_forbidden = True

    result = await refresher.run()

    assert result is not None
    assert "forbidden" == result["users"]
    assert [] == await rows(database, users, "id")
    assert 2 == len(await rows(database, pipelines, "id"))
    assert 2 == len(await rows(database, loss_reasons, "id"))
    started = time.monotonic()
    assert await clients[0].get_json("/api/v4/account") is not None
    assert time.monotonic() - started < 5


async def test_loss_reasons_404_means_none(
    database: Database, fake: FakeAmoState, refresher: ReferenceRefresher
) -> None:
    fake.reference.loss_reasons_missing = True

    result = await refresher.run()

    assert result is not None
    assert "absent" == result["loss_reasons"]
    assert [] == await rows(database, loss_reasons, "id")
    assert 2 == len(await rows(database, pipelines, "id"))


async def test_unknown_id_brings_a_refresh_at_most_every_five_minutes(
    database: Database,
    fake: FakeAmoState,
    refresher: ReferenceRefresher,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """A deal in a pipeline created after the last refresh brings one soon; an id still
    unknown afterwards waits 5 minutes, and once refreshed past it, costs nothing more."""
    loader = clients[0]
    start = datetime.now(UTC)
    assert (await refresher.run(now=start - timedelta(minutes=30))) is not None
    new_pipe, new_stage = 7000005, 47000021
    fake.reference.pipelines.append(
        pipeline(new_pipe, "Новая", 3, [stage(new_pipe, new_stage, "Звонок", 20)])
    )
    lead = fake.add_lead(pipeline_id=new_pipe, status_id=new_stage)
    await store(database, loader, "leads", [lead["id"]])
    assert 6 == await reference_calls(database)

    result = await refresher.run(now=datetime.now(UTC))

    assert result is not None
    assert f"unknown pipeline {new_pipe}" == result["reason"]
    assert 12 == await reference_calls(database)
    assert new_pipe in {p["id"] for p in await rows(database, pipelines, "id")}

    # A stage amoCRM does not list (yet): one more refresh, not before 5 minutes.
    refreshed_at = datetime.fromisoformat(result["at"])
    odd = fake.add_lead(pipeline_id=new_pipe, status_id=47000099)
    await store(database, loader, "leads", [odd["id"]])
    assert await refresher.run(now=refreshed_at + timedelta(seconds=60)) is None
    assert 12 == await reference_calls(database)
    later = await refresher.run(now=refreshed_at + timedelta(seconds=TICK + 1))
    assert later is not None
    assert f"unknown stage {new_pipe}/47000099" == later["reason"]
    assert 18 == await reference_calls(database)
    # That deal was stored before the last refresh: no more refreshes for it.
    last = datetime.fromisoformat(later["at"])
    assert await refresher.run(now=last + timedelta(seconds=TICK + 1)) is None
    assert 18 == await reference_calls(database)


async def test_idle_account_costs_at_most_eight_calls_an_hour(
    make_settings: Factory, database: Database, fake: FakeAmoState, refresher: ReferenceRefresher
) -> None:
    """Default settings: the job ticks every 5 minutes; over one simulated hour of ticks an
    idle account gets one refresh, 6 requests (≤ 8)."""
    settings = make_settings()
    assert 3600.0 == settings.reference_interval
    job = next(
        j
        for j in periodic_jobs(settings, database, build_client(settings, database))
        if j.name == "reference"
    )
    assert TICK == job.interval
    start = datetime.now(UTC) - timedelta(hours=2)

    results = [
        await refresher.run(now=start + timedelta(seconds=k * job.interval))
        for k in range(int(3600 / job.interval))
    ]

    assert 1 == sum(r is not None for r in results)
    assert await reference_calls(database) <= 8
    assert 6 == len(fake.calls("/api/v4/"))


async def test_named_view(
    database: Database,
    fake: FakeAmoState,
    refresher: ReferenceRefresher,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """`amocrm_deals_named`: every deal column plus the names, on both databases."""
    loader = clients[0]
    contact = fake.add_contact(name="Ирина", phones=["+7 900 111-22-33", "+7 900 000-00-00"])
    other = fake.add_contact(name="Пётр")
    won = fake.add_lead(
        status_id=STATUS_WON,
        pipeline_id=SECOND_PIPELINE_ID,
        responsible_user_id=SECOND_USER_ID,
        contacts=[(other["id"], False), (contact["id"], True)],
    )
    lost = fake.add_lead(created_by=SECOND_USER_ID)
    fake.update_lead(lost["id"], status_id=STATUS_LOST, loss_reason_id=LOSS_REASON_ID)
    open_ = fake.add_lead(pipeline_id=DEFAULT_PIPELINE_ID, status_id=DEFAULT_STATUS_ID)
    await store(database, loader, "contacts", [contact["id"], other["id"]])
    await store(database, loader, "leads", [won["id"], lost["id"], open_["id"]])
    await refresher.run()

    async with database.read() as conn:
        result = await conn.execute(text("SELECT * FROM amocrm_deals_named ORDER BY id"))
        columns = list(result.keys())
        named = [dict(r._mapping) for r in result]
        deal_rows = (await conn.execute(select(deals).order_by(deals.c.id))).all()

    extra = [
        "pipeline_name",
        "status_name",
        "status_kind",
        "responsible_user_name",
        "loss_reason_name",
        "main_contact_id",
        "main_contact_name",
        "main_contact_phone",
    ]
    assert sorted([c.name for c in deals.columns] + extra) == sorted(columns)
    assert [d.id for d in deal_rows] == [n["id"] for n in named]
    by_id = {n["id"]: n for n in named}
    w, lo, o = by_id[won["id"]], by_id[lost["id"]], by_id[open_["id"]]
    assert ("Аренда", "Успешно реализовано", "won", "Борис Менеджеров") == (
        w["pipeline_name"],
        w["status_name"],
        w["status_kind"],
        w["responsible_user_name"],
    )
    assert (contact["id"], "Ирина", "+7 900 111-22-33") == (
        w["main_contact_id"],
        w["main_contact_name"],
        w["main_contact_phone"],
    )
    assert ("Воронка", "Закрыто и не реализовано", "lost", "Дорого") == (
        lo["pipeline_name"],
        lo["status_name"],
        lo["status_kind"],
        lo["loss_reason_name"],
    )
    assert (LOSS_REASON_ID, SECOND_USER_ID) == (lo["loss_reason_id"], lo["created_by"])
    assert ("Первичный контакт", "open", None, None) == (
        o["status_name"],
        o["status_kind"],
        o["main_contact_id"],
        o["loss_reason_name"],
    )


def test_upgrade_fills_the_new_columns_from_stored_rows(db_url: str) -> None:
    """Rows stored before 0008 get loss_reason_id/created_by/updated_by from `raw` and their
    first phone from `phones`, so the view names them without a new fetch."""
    command.downgrade(migrate.alembic_config(db_url), "0007_semantics")
    engine = create_sync_engine(db_url)
    now = datetime.now(UTC)
    raw = {"id": 1, "loss_reason_id": 5000001, "created_by": 9000003, "updated_by": 0}
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(deals).values(id=1, status_id=143, custom_fields=[], raw=raw, synced_at=now)
            )
            conn.execute(
                insert(deals).values(id=2, custom_fields=[], raw={"created_by": "x"}, synced_at=now)
            )
            conn.execute(
                insert(contacts).values(
                    id=7,
                    name="Ирина",
                    phones=["+7 900 1", "+7 900 2"],
                    emails=[],
                    custom_fields=[],
                    raw={},
                    synced_at=now,
                )
            )
            conn.execute(insert(deal_contacts).values(deal_id=1, contact_id=7, is_main=True))
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            got = conn.execute(
                text(
                    "SELECT id, loss_reason_id, created_by, updated_by, status_kind, "
                    "main_contact_name, main_contact_phone FROM amocrm_deals_named ORDER BY id"
                )
            ).all()
    finally:
        engine.dispose()

    assert [
        (1, 5000001, 9000003, 0, "lost", "Ирина", "+7 900 1"),
        (2, None, None, None, "open", None, None),
    ] == [tuple(r) for r in got]


async def test_worker_job_refreshes_once_then_waits(
    make_settings: Factory, database: Database, fake: FakeAmoState
) -> None:
    """The worker's job (as services.py builds it): its calls are logged `reference`; a
    second tick right after costs nothing. AMOSYNC_REFERENCE_INTERVAL=0 turns it off."""
    settings = make_settings()
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    client = build_client(settings, database, transport=transport)
    try:
        jobs = {j.name: j for j in periodic_jobs(settings, database, client, transport)}
        await jobs["reference"].run()
        await jobs["reference"].run()
        off = periodic_jobs(make_settings(reference_interval=0), database, client, transport)
    finally:
        await client.aclose()

    assert 6 == await reference_calls(database) == len(fake.calls("/api/v4/"))
    assert 2 == len(await rows(database, pipelines, "id"))
    assert "reference" not in {j.name for j in off}


async def test_users_are_read_across_pages(
    database: Database, fake: FakeAmoState, refresher: ReferenceRefresher
) -> None:
    """260 users: two pages of 250 (limit 250), followed by the `next` link."""
    fake.reference.users = [user(9100000 + n, f"User {n}", f"u{n}@example.com") for n in range(260)]

    await refresher.run()

    assert 2 == len(fake.calls("/api/v4/users"))
    assert 260 == len(await rows(database, users, "id"))
