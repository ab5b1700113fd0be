"""The worker's background verification: calls per hour respected, oldest-verified first."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import func, insert, select

from amosync.amocrm import AmoClient
from amosync.catchup.budget import VERIFY, ApiBudget
from amosync.catchup.verify_job import BackgroundVerifier, background_verifier, verify_interval
from amosync.catchup.verify_state import read_last
from amosync.db.database import Database
from amosync.db.tables import api_requests, deals, verified, webhook_events
from amosync.services import build_client, periodic_jobs
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from tests.integration.test_verify import RENTPROG, store
from tests.integration.test_worker import event

Factory = Callable[..., Settings]


@pytest.fixture
def fake() -> FakeAmoState:
    return FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)


@pytest.fixture
def transport(fake: FakeAmoState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_fake_amocrm(fake))


@pytest.fixture
async def clients(
    make_settings: Factory, database: Database, transport: httpx.ASGITransport
) -> AsyncIterator[tuple[AmoClient, AmoClient]]:
    """A client for storing rows (logged as webhook calls) and the verifier's own."""
    settings = make_settings()
    loader = build_client(settings, database, purpose="webhook", transport=transport)
    checker = build_client(settings, database, purpose=VERIFY, transport=transport)
    yield loader, checker
    await loader.aclose()
    await checker.aclose()


async def verify_calls(database: Database) -> int:
    async with database.read() as conn:
        n = await conn.scalar(
            select(func.count()).select_from(api_requests).where(api_requests.c.purpose == VERIFY)
        )
    return int(n or 0)


async def test_default_job_spends_ten_calls_an_hour(
    make_settings: Factory,
    database: Database,
    fake: FakeAmoState,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """Default settings: 10 calls an hour (one batch of 250 per run), then the run skips."""
    loader, checker = clients
    await store(database, loader, "leads", [fake.add_lead()["id"] for _ in range(30)])
    verifier = background_verifier(make_settings(), database, checker)

    reports = [await verifier.run() for _ in range(11)]

    assert [30] * 10 == [r.checked for r in reports[:10] if r is not None]
    assert reports[10] is None
    assert 10 == await verify_calls(database)


async def test_oldest_verified_rows_come_first(
    make_settings: Factory,
    database: Database,
    fake: FakeAmoState,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """300 deals: the first run takes 250, the second the 50 never verified, then the
    oldest-verified 200; a kind never verified (contacts) goes before re-verifying deals."""
    loader, checker = clients
    lead_ids = sorted(fake.add_lead()["id"] for _ in range(300))
    await store(database, loader, "leads", lead_ids)
    verifier = background_verifier(make_settings(), database, checker)

    first = await verifier.run()
    first_ids = await verified_ids(database, "leads")
    second = await verifier.run()
    person = fake.add_contact(first_name="Анна")
    await store(database, loader, "contacts", [person["id"]])
    third = await verifier.run()

    assert first is not None
    assert second is not None
    assert third is not None
    assert lead_ids[:250] == first_ids
    assert 250 == second.checked
    assert lead_ids == await verified_ids(database, "leads")
    assert (1, [person["id"]]) == (third.checked, await verified_ids(database, "contacts"))
    last = await read_last(database)
    assert last is not None
    assert ("worker", "contacts") == (last["source"], last["entity"])


async def verified_ids(database: Database, entity: str) -> list[int]:
    async with database.read() as conn:
        rows = await conn.execute(
            select(verified.c.id).where(verified.c.entity == entity).order_by(verified.c.id)
        )
        return [int(i) for i in rows.scalars()]


async def test_shared_budget_and_webhook_backlog_come_first(
    make_settings: Factory,
    database: Database,
    fake: FakeAmoState,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """Verification spends inside AMOSYNC_API_BUDGET_PER_HOUR and waits for a backlog."""
    loader, checker = clients
    await store(database, loader, "leads", [fake.add_lead()["id"]])
    tight = background_verifier(make_settings(api_budget_per_hour=2), database, checker)
    assert [True, True, False] == [(await tight.run()) is not None for _ in range(3)]

    async with database.write() as conn:
        await conn.execute(insert(webhook_events), [event("leads", 1)] * 3)
    busy = BackgroundVerifier(
        database, checker, ApiBudget(database, 1000, 2), RENTPROG, calls_per_hour=1000
    )
    assert await busy.run() is None
    assert 2 == await verify_calls(database)


async def test_missing_ids_are_left_unconfirmed_when_the_budget_is_spent(
    make_settings: Factory,
    database: Database,
    fake: FakeAmoState,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    """The single-id confirmations spend from the same cap; the rest wait, unflagged."""
    loader, checker = clients
    ids = sorted(fake.add_lead()["id"] for _ in range(3))
    await store(database, loader, "leads", ids)
    for lead_id in ids:
        fake.delete_lead(lead_id)
    verifier = background_verifier(make_settings(verify_calls_per_hour=2), database, checker)

    report = await verifier.run()

    assert report is not None
    assert (2, 1, 1, 2) == (report.calls, report.checked, report.repaired, report.unconfirmed)
    async with database.read() as conn:
        flagged = (await conn.execute(select(deals.c.id).where(deals.c.is_deleted))).all()
    assert [(ids[0],)] == [tuple(r) for r in flagged]
    assert [ids[0]] == await verified_ids(database, "leads")


def test_job_is_on_by_default_and_off_with_zero(make_settings: Factory, database: Database) -> None:
    client = build_client(make_settings(), database)
    on = {j.name: j for j in periodic_jobs(make_settings(), database, client)}
    off = {j.name for j in periodic_jobs(make_settings(verify_calls_per_hour=0), database, client)}

    assert 360.0 == on["verify"].interval == verify_interval(10)
    assert "verify" not in off
    assert 60.0 == verify_interval(1000)


async def test_periodic_job_logs_its_calls_as_verify(
    make_settings: Factory, database: Database, fake: FakeAmoState, transport: httpx.ASGITransport
) -> None:
    settings = make_settings()
    loader = build_client(settings, database, purpose="webhook", transport=transport)
    await store(database, loader, "leads", [fake.add_lead()["id"]])
    await loader.aclose()
    jobs = {j.name: j for j in periodic_jobs(settings, database, loader, transport)}

    await jobs["verify"].run()

    assert 1 == await verify_calls(database)
    last = await read_last(database)
    assert last is not None
    assert 1 == last["checked"]
