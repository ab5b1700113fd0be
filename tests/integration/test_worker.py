"""The worker drains the inbox through the fake amoCRM into the tables, on both databases."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy import select

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.tables import contacts, deal_contacts, deals
from amosync.db.tables import webhook_events as ev
from amosync.inbox import InboxStore
from amosync.testing import (
    DEFAULT_TOKEN,
    RENTPROG_FIELD_ID,
    FakeAmoState,
    Fault,
    create_fake_amocrm,
    rentprog_field,
)
from amosync.worker.heartbeat import REAUTH_REQUIRED
from amosync.worker.loop import Worker, WorkerConfig

BASE = "https://testaccount.amocrm.ru"


def event(entity: str, entity_id: int, action: str = "update") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "received_at": now,
        "source": "webhook",
        "entity": entity,
        "action": action,
        "entity_id": entity_id,
        "payload": {"id": str(entity_id)},
        "status": "pending",
        "attempts": 0,
        "available_at": now,
    }


def make_worker(
    database: Database,
    fake: FakeAmoState,
    *,
    token: str = DEFAULT_TOKEN,
    inbox: InboxStore | None = None,
    **config: Any,
) -> Worker:
    client = AmoClient(
        BASE,
        LongLivedToken(token),
        SlidingWindowLimiter(50),
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
        backoff_base=0.01,
    )
    cfg = WorkerConfig(**{"linger": 0.0, "retry_base_delay": 0.0, **config})
    inbox = inbox or InboxStore(database)
    return Worker(database, inbox, client, RentProgField(RENTPROG_FIELD_ID), cfg)


async def drain(worker: Worker) -> None:
    while await worker.run_once():
        pass


async def rows(database: Database, query: Any) -> list[tuple[Any, ...]]:
    async with database.read() as conn:
        return [tuple(r) for r in (await conn.execute(query)).all()]


async def test_events_become_deals_with_rentprog_id(database: Database) -> None:
    """Lead events end `done`, the deals are stored from the API with their RentProg ID."""
    fake = FakeAmoState(rate_limit_rps=None)
    a = fake.add_lead(
        name="Аренда Kia Rio", price=4500, custom_fields_values=[rentprog_field(" 81234 ")]
    )
    b = fake.add_lead(name="No booking")
    await InboxStore(database).append(
        [event("leads", a["id"], "add"), event("leads", b["id"], "add")]
    )

    await drain(make_worker(database, fake))

    assert [
        (a["id"], "Аренда Kia Rio", 4500, "81234"),
        (b["id"], "No booking", 0, None),
    ] == await rows(
        database,
        select(deals.c.id, deals.c.name, deals.c.price, deals.c.rentprog_id).order_by(deals.c.id),
    )
    assert [("done",), ("done",)] == await rows(database, select(ev.c.status))


async def test_nul_characters_from_the_api_do_not_block_a_batch(database: Database) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000: a lead whose name or RentProg ID
    carries one is stored without it, on both databases, and the rest of its batch too."""
    fake = FakeAmoState(rate_limit_rps=None)
    odd = fake.add_lead(name="Kia\u0000 Rio", custom_fields_values=[rentprog_field("81\u00002")])
    fine = fake.add_lead(name="Hyundai Solaris")
    await InboxStore(database).append([event("leads", odd["id"]), event("leads", fine["id"])])

    await drain(make_worker(database, fake))

    stored = await rows(
        database, select(deals.c.id, deals.c.name, deals.c.rentprog_id, deals.c.raw)
    )
    by_id = {row[0]: row[1:] for row in stored}
    assert by_id[odd["id"]][:2] == ("Kia Rio", "812")
    assert by_id[odd["id"]][2]["name"] == "Kia Rio"
    assert by_id[fine["id"]][:2] == ("Hyundai Solaris", None)
    assert {("done",)} == set(await rows(database, select(ev.c.status)))


async def test_burst_about_few_leads_costs_one_call(database: Database) -> None:
    """30 events about 3 leads are collapsed into one API call."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [fake.add_lead()["id"] for _ in range(3)]
    await InboxStore(database).append([event("leads", ids[n % 3], "update") for n in range(30)])

    await drain(make_worker(database, fake))

    assert 1 == len(fake.calls("/api/v4/leads"))
    assert 3 == len(await rows(database, select(deals.c.id)))
    assert {("done",)} == set(await rows(database, select(ev.c.status)))


async def test_deleted_lead_is_flagged_not_removed(database: Database) -> None:
    """A lead amoCRM no longer returns keeps its row with is_deleted = true."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="to delete")
    inbox = InboxStore(database)
    await inbox.append([event("leads", lead["id"], "add")])
    worker = make_worker(database, fake)
    await drain(worker)
    fake.delete_lead(lead["id"])
    await inbox.append([event("leads", lead["id"], "delete")])

    await drain(worker)

    assert [("to delete", True)] == await rows(database, select(deals.c.name, deals.c.is_deleted))


async def test_linked_contacts_are_fetched_once(database: Database) -> None:
    """A deal's unknown contacts are queued and fetched, with phones, and linked."""
    fake = FakeAmoState(rate_limit_rps=None)
    contact = fake.add_contact(first_name="Иван", last_name="Петров", phones=["+7 900 000-00-01"])
    lead = fake.add_lead(contacts=[(contact["id"], True)])
    await InboxStore(database).append([event("leads", lead["id"], "add")])

    await drain(make_worker(database, fake))

    assert [(contact["id"], ["+7 900 000-00-01"])] == await rows(
        database, select(contacts.c.id, contacts.c.phones)
    )
    assert [(lead["id"], contact["id"], True)] == await rows(database, select(deal_contacts))
    assert 1 == len(fake.calls("/api/v4/contacts"))


async def test_refused_token_keeps_events_pending(database: Database) -> None:
    """On 401 nothing is failed: events stay pending with no attempt used; the worker says why."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead()
    await InboxStore(database).append([event("leads", lead["id"])])
    worker = make_worker(database, fake, token="revoked")

    task = asyncio.create_task(worker.run())
    for _ in range(100):
        if worker.state.state == REAUTH_REQUIRED:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await task

    assert "401" in (worker.state.detail or "")
    assert [("pending", 0)] == await rows(database, select(ev.c.status, ev.c.attempts))
    assert 1 == len(fake.requests)


async def test_transient_errors_retry_then_fail_with_reason(database: Database) -> None:
    """Persistent 5xx: the event is retried, then failed after max attempts with the reason kept."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead()
    fake.script_faults(*[Fault(status=500)] * 6)
    await InboxStore(database).append([event("leads", lead["id"])])
    worker = make_worker(database, fake, max_attempts=2)

    await worker.run_once()
    first = await rows(database, select(ev.c.status, ev.c.attempts))
    await worker.run_once()

    [(status, attempts, error)] = await rows(
        database, select(ev.c.status, ev.c.attempts, ev.c.last_error)
    )
    assert [("pending", 1)] == first
    assert ("failed", 2) == (status, attempts)
    assert "500" in error
    assert (0, 1) == (worker.state.processed, worker.state.failed)


async def test_retry_after_fault_clears_succeeds(database: Database) -> None:
    """A transient fault costs one retry; the next run stores the deal and nothing is failed."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="eventually")
    fake.script_faults(*[Fault(status=503)] * 3)
    await InboxStore(database).append([event("leads", lead["id"])])
    worker = make_worker(database, fake)

    await worker.run_once()
    await drain(worker)

    assert [("eventually",)] == await rows(database, select(deals.c.name))
    assert [("done", 2)] == await rows(database, select(ev.c.status, ev.c.attempts))


def count_claims(database: Database) -> list[str]:
    """Every claim statement the database runs from now on (the inbox's only UPDATE … RETURNING)."""
    claims: list[str] = []

    def _seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE amocrm_webhook_events") and "RETURNING" in statement:
            claims.append(statement)

    for sync_engine in database.sync_engines():  # claims run on the writer thread's too
        sa_event.listen(sync_engine, "before_cursor_execute", _seen)

    return claims


async def test_linger_collects_events_into_one_call(database: Database) -> None:
    """An event arriving while the worker lingers joins the batch: two leads, one API call."""
    fake = FakeAmoState(rate_limit_rps=None)
    first, second = fake.add_lead()["id"], fake.add_lead()["id"]
    inbox = InboxStore(database)
    worker = make_worker(database, fake, linger=0.4, poll_interval=0.1)
    await inbox.append([event("leads", first)])

    batch = asyncio.create_task(worker.run_once())
    await asyncio.sleep(0.15)
    await inbox.append([event("leads", second)])

    assert 2 == await batch
    assert 1 == len(fake.calls("/api/v4/leads"))
    assert {("done",)} == set(await rows(database, select(ev.c.status)))


async def test_next_batch_after_a_batch_is_claimed_once(database: Database) -> None:
    """Right after a batch the worker waits out the linger before claiming, instead of
    claiming what just arrived and claiming again at the end of the linger."""
    fake = FakeAmoState(rate_limit_rps=None)
    first, second = fake.add_lead()["id"], fake.add_lead()["id"]
    inbox = InboxStore(database)
    # A linger of 1 s, not the default 0.3: the pause only exists while the first batch took
    # less than the linger, and on a loaded host processing it took over 0.3 s.
    worker = make_worker(database, fake, linger=1.0, poll_interval=1.0)
    await inbox.append([event("leads", first)])
    assert 1 == await worker.run_once()
    # Arrived while that batch was processed (its commit came after the batch's claim), 0.75 s
    # ago: claimed at once it would be younger than the linger and wait for a second claim.
    arrived = event("leads", second)
    arrived["received_at"] -= timedelta(seconds=0.75)
    await inbox.append([arrived])
    claims = count_claims(database)

    assert 1 == await worker.run_once()

    assert 1 == len(claims)
    assert {("done",)} == set(await rows(database, select(ev.c.status)))


async def test_backlog_is_not_paced(database: Database) -> None:
    """A full claim means more events are due: the next batch is claimed at once."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [fake.add_lead()["id"] for _ in range(4)]
    backlog = [event("leads", i) for i in ids]
    for row in backlog:
        row["received_at"] -= timedelta(seconds=10)  # older than the linger: no waiting
    await InboxStore(database).append(backlog)
    worker = make_worker(database, fake, batch_size=2, linger=3.0, poll_interval=3.0)
    assert 2 == await worker.run_once()

    started = time.monotonic()
    assert 2 == await worker.run_once()

    assert time.monotonic() - started < 1.5
