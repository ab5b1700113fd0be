"""Catch-up finds what webhooks missed, inside the hourly budget, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from amosync.amocrm import AmoClient
from amosync.catchup.backfill import Backfill, backfill_key
from amosync.catchup.budget import BACKFILL, CATCHUP, ApiBudget, spent_last_hour
from amosync.catchup.reconcile import (
    DELETIONS_KEY,
    LEASE_KEY,
    CatchupBusy,
    Reconciler,
    entity_key,
)
from amosync.catchup.state import load
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.db.tables import api_requests, companies, contacts, deals
from amosync.errors import RetryLater
from amosync.inbox import InboxStore
from amosync.services import build_client, build_services
from amosync.settings import Settings
from amosync.testing import RENTPROG_FIELD_ID, FakeAmoState, Fault, create_fake_amocrm
from tests.integration.test_worker import event

DAY = 86400
Factory = Callable[..., Settings]


@pytest.fixture
def fake() -> FakeAmoState:
    # Five seconds behind: a few same-second edits (each bumps updated_at by one) never
    # carry a timestamp later than the real "now" a run ends its window at.
    return FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)


@pytest.fixture
def transport(fake: FakeAmoState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_fake_amocrm(fake))


@pytest.fixture
async def client(
    make_settings: Factory, database: Database, transport: httpx.ASGITransport
) -> AsyncIterator[AmoClient]:
    client = build_client(make_settings(), database, purpose=CATCHUP, transport=transport)
    yield client
    await client.aclose()


def reconciler(
    database: Database, client: AmoClient, *, budget: int = 1000, backlog_limit: int = 500
) -> Reconciler:
    return Reconciler(
        database,
        client,
        ApiBudget(database, budget, backlog_limit),
        RentProgField(RENTPROG_FIELD_ID),
        overlap=300,
    )


async def rows(database: Database, query: Any) -> list[tuple[Any, ...]]:
    async with database.read() as conn:
        return [tuple(r) for r in (await conn.execute(query)).all()]


async def test_change_without_webhook_is_found_and_history_is_not_read(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """A lead edited with no webhook is stored after one run; the first run reads no history."""
    old = fake.add_lead(name="yesterday", created_at=int(time.time()) - DAY)
    first = await reconciler(database, client).run()
    fake.update_lead(old["id"], name="edited, webhook lost", price=900)

    second = await reconciler(database, client).run()

    assert {"contacts": 0, "companies": 0, "leads": 0} == first.fetched
    assert {"contacts": 0, "companies": 0, "leads": 1} == second.fetched
    assert [(old["id"], "edited, webhook lost", 900, False)] == await rows(
        database, select(deals.c.id, deals.c.name, deals.c.price, deals.c.is_deleted)
    )


async def test_contacts_and_companies_are_caught_up_too(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Contacts and companies changed since the watermark are stored, leads with their links."""
    await reconciler(database, client).run()
    company = fake.add_company(name="ООО Прокат")
    person = fake.add_contact(first_name="Анна", phones=["+7 900 111-22-33"])
    fake.add_lead(contacts=[(person["id"], True)])

    report = await reconciler(database, client).run()

    assert {"leads": 1, "contacts": 1, "companies": 1} == report.fetched
    assert [(person["id"], ["+7 900 111-22-33"])] == await rows(
        database, select(contacts.c.id, contacts.c.phones)
    )
    assert [(company["id"],)] == await rows(database, select(companies.c.id))


async def test_deleted_lead_is_marked_deleted(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """A `lead_deleted` event flags the stored deal; a deleted-then-restored one stays live."""
    kept = fake.add_lead(name="restored")
    gone = fake.add_lead(name="deleted")
    await reconciler(database, client).run()
    fake.delete_lead(gone["id"])
    fake.delete_lead(kept["id"])
    fake.restore_lead(kept["id"])

    report = await reconciler(database, client).run()

    assert 1 == report.deleted
    assert [(kept["id"], False), (gone["id"], True)] == await rows(
        database, select(deals.c.id, deals.c.is_deleted).order_by(deals.c.id)
    )


async def test_events_range_falls_back_to_the_legacy_comma_form(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """An account refusing `filter[created_at][from]` is asked `from,to`, remembered after."""
    fake.events.created_at_forms = frozenset({"comma", "single"})
    gone = fake.add_lead()
    await reconciler(database, client).run()
    fake.delete_lead(gone["id"])

    await reconciler(database, client).run()
    await reconciler(database, client).run()

    assert [400, 204, 200, 200] == [r.status for r in fake.calls("/api/v4/events")]
    assert [(True,)] == await rows(database, select(deals.c.is_deleted))
    assert True is (await load(database, DELETIONS_KEY) or {}).get("comma_range")


async def test_idle_run_costs_one_call_per_query(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """With nothing new, a run is contacts + companies + leads + events: 4 calls, all 204."""
    lead = fake.add_lead(created_at=int(time.time()) - DAY)
    await reconciler(database, client).run()
    before = len(fake.requests)

    report = await reconciler(database, client).run()

    assert [
        ("/api/v4/contacts", 204),
        ("/api/v4/companies", 204),
        ("/api/v4/leads", 204),
        ("/api/v4/events", 204),
    ] == [(r.path, r.status) for r in fake.requests[before:]]
    assert (4, True) == (report.calls, report.complete)
    assert lead["id"] not in [r[0] for r in await rows(database, select(deals.c.id))]


async def test_watermark_advances_to_the_newest_change(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """The watermark becomes the newest updated_at seen; the next run asks from it − overlap."""
    await reconciler(database, client).run()
    fake.wall_clock = lambda: time.time() + 100  # a change newer than the first run's "now"
    lead = fake.add_lead(name="later")
    fake.wall_clock = lambda: time.time() - 5

    await reconciler(database, client).run()
    before = len(fake.requests)
    await reconciler(database, client).run()

    assert {"watermark": lead["updated_at"], "resume": None} == await load(
        database, entity_key("leads")
    )
    (leads_query,) = [r.query for r in fake.requests[before:] if r.path == "/api/v4/leads"]
    assert f"filter%5Bupdated_at%5D%5Bfrom%5D={lead['updated_at'] - 300}" in leads_query
    assert None is (await load(database, DELETIONS_KEY) or {}).get("resume")


async def test_spent_budget_stops_the_run_and_the_next_run_resumes(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """With 4 calls of budget, 500 of 600 changed leads are stored; the rest come next hour."""
    moment = int(time.time()) - 10
    fake.wall_clock = lambda: moment  # one bulk edit: every lead has the same updated_at
    for _ in range(600):
        fake.add_lead()

    # contacts 204, companies 204, leads pages 1 and 2: then the budget is spent.
    stopped = await reconciler(database, client, budget=4).run()
    stored_after_first = await rows(database, select(func.count()).select_from(deals))
    kept = await load(database, entity_key("leads"))
    resumed = await reconciler(database, client, budget=4 + 4).run()

    assert ("budget", 4, 500) == (stopped.stopped, stopped.calls, stopped.fetched["leads"])
    assert [(500,)] == stored_after_first
    assert {"start": moment, "page": 3} == (kept or {})["resume"]
    assert (None, 100) == (resumed.stopped, resumed.fetched["leads"])
    assert [(600,)] == await rows(database, select(func.count()).select_from(deals))
    # 3 pages in all: the resumed run read only the page it had not read yet.
    assert 3 == len(fake.calls("/api/v4/leads"))
    assert 8 == await spent_last_hour(database)


async def test_large_webhook_backlog_comes_first(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """While more webhook events wait than one worker batch, catch-up sends nothing."""
    await InboxStore(database).append([event("leads", 1000 + n) for n in range(3)])

    report = await reconciler(database, client, backlog_limit=2).run()

    assert ("backlog", 0, []) == (report.stopped, report.calls, fake.requests)


async def test_only_one_run_at_a_time(database: Database, client: AmoClient) -> None:
    """A run held by another process, or finished by one moments ago, is not started again."""
    other = Lease(database, LEASE_KEY, "worker-b", seconds=300)
    assert None is await other.acquire()

    with pytest.raises(CatchupBusy, match="in progress in worker-b"):
        await reconciler(database, client).run()
    await other.release(finished=True)
    with pytest.raises(CatchupBusy, match="worker-b finished a catch-up run moments ago"):
        await reconciler(database, client).run(min_gap=600)
    report = await reconciler(database, client).run()

    assert report.complete


async def test_failing_amocrm_releases_the_run(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """amoCRM failing raises to the caller, and the next run is not locked out by it."""
    fake.add_lead()
    fake.script_faults(*[Fault(503)] * 3, path_prefix="/api/v4/leads")

    with pytest.raises(RetryLater):
        await reconciler(database, client).run()
    report = await reconciler(database, client).run()

    assert (True, 1) == (report.complete, report.fetched["leads"])


async def test_backfill_loads_everything_and_resumes_after_interruption(
    make_settings: Factory, database: Database, fake: FakeAmoState, transport: Any
) -> None:
    """A backfill cut off by an error after one page continues from that page, not page 1."""
    start = int(time.time()) - 30 * DAY
    for n in range(600):
        fake.add_lead(created_at=start + n)
    fake.add_contact(created_at=start)
    client = build_client(make_settings(), database, purpose=BACKFILL, transport=transport)
    seen: list[tuple[str, int, bool]] = []

    def fail_after_first_page(kind: str, stored: int, done: bool) -> None:
        seen.append((kind, stored, done))
        if stored == 250:  # page 1 is committed: amoCRM goes down for page 2
            fake.script_faults(*[Fault(500)] * 3, path_prefix="/api/v4/leads")

    def backfill(on_progress: Any) -> Backfill:
        budget = ApiBudget(database, 100, 500)
        rentprog = RentProgField(RENTPROG_FIELD_ID)
        return Backfill(database, client, budget, rentprog, on_progress=on_progress)

    try:
        with pytest.raises(RetryLater):
            await backfill(fail_after_first_page).run()
        stored_then = await rows(database, select(func.count()).select_from(deals))
        report = await backfill(lambda *p: seen.append(p)).run()
    finally:
        await client.aclose()

    assert [(250,)] == stored_then
    assert None is report.stopped
    assert [(600,)] == await rows(database, select(func.count()).select_from(deals))
    assert [(1,)] == await rows(database, select(func.count()).select_from(contacts))
    # Pages by keyset on created_at: 1 good + 3 failed tries, then pages 2 and 3 only.
    assert [200, 500, 500, 500, 200, 200] == [r.status for r in fake.calls("/api/v4/leads")]
    assert ("leads", 600, True) in seen  # the 2 re-read at page edges are not counted
    assert {"cursor": None, "done": True, "loaded": 600, "edge": []} == await load(
        database, backfill_key("leads")
    )


async def test_backfill_without_waiting_stops_at_the_budget(
    make_settings: Factory, database: Database, fake: FakeAmoState, transport: Any
) -> None:
    """`--no-wait`: a spent budget ends the run "budget"; the next run finishes the rest."""
    for n in range(300):
        fake.add_lead(created_at=1_600_000_000 + n)
    client = build_client(make_settings(), database, purpose=BACKFILL, transport=transport)

    def backfill(budget: int) -> Backfill:
        rentprog = RentProgField(RENTPROG_FIELD_ID)
        return Backfill(database, client, ApiBudget(database, budget, 500), rentprog, wait=False)

    try:
        first = await backfill(1).run(("leads",))
        second = await backfill(2).run(("leads",))
        again = await backfill(2).run(("leads",))
    finally:
        await client.aclose()

    assert ("budget", 1, {"leads": 250}) == (first.stopped, first.calls, first.loaded)
    assert (None, 1) == (second.stopped, second.calls)
    assert (None, 0, {"leads": 0}) == (again.stopped, again.calls, again.loaded)
    assert [(300,)] == await rows(database, select(func.count()).select_from(deals))


async def test_periodic_job_runs_inside_the_worker(
    make_settings: Factory, database: Database, fake: FakeAmoState, transport: Any
) -> None:
    """The worker started by build_services runs catch-up on its interval, as "catchup"."""
    lead = fake.add_lead(name="no webhook ever came")
    services = build_services(make_settings(reconcile_interval=0.2), amocrm_transport=transport)
    task = asyncio.create_task(services.worker.run())
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not await rows(database, select(deals.c.id)):
            await asyncio.sleep(0.1)
    finally:
        services.worker.stop()
        await task
        await services.aclose()

    assert [(lead["id"],)] == await rows(database, select(deals.c.id))
    purposes = await rows(database, select(api_requests.c.purpose).distinct())
    assert ("catchup",) in purposes
