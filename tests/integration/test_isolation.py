"""A bad entity is isolated, never its batch: odd values from amoCRM are stored or fail alone.

Every test runs on SQLite and PostgreSQL against the fake amoCRM, with the default settings
unless it says otherwise.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.catchup.budget import CATCHUP
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.tables import deals
from amosync.db.tables import webhook_events as ev
from amosync.inbox import InboxStore
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import (
    DEFAULT_TOKEN,
    RENTPROG_FIELD_ID,
    FakeAmoState,
    create_fake_amocrm,
    rentprog_field,
)
from amosync.worker.loop import Worker, WorkerConfig
from tests.integration.test_catchup import reconciler
from tests.integration.test_web import FORM, SECRET_URL, fixture, running
from tests.integration.test_worker import BASE, drain, event, rows

MIB = 1024 * 1024


def _fake() -> FakeAmoState:
    return FakeAmoState(rate_limit_rps=None)


def _client(fake: FakeAmoState, **tuned: Any) -> AmoClient:
    return AmoClient(
        BASE,
        LongLivedToken(DEFAULT_TOKEN),
        SlidingWindowLimiter(50),
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
        backoff_base=0.01,
        **tuned,
    )


def make_worker(database: Database, fake: FakeAmoState, **tuned: Any) -> Worker:
    config = WorkerConfig(linger=0.0, retry_base_delay=0.0)
    return Worker(
        database,
        InboxStore(database),
        _client(fake, **tuned),
        RentProgField(RENTPROG_FIELD_ID),
        config,
    )


async def _events_by_entity(database: Database) -> dict[int, set[tuple[str, str | None]]]:
    found: dict[int, set[tuple[str, str | None]]] = {}
    for entity_id, status, error in await rows(
        database, select(ev.c.entity_id, ev.c.status, ev.c.last_error)
    ):
        found.setdefault(entity_id, set()).add((status, error))
    return found


async def test_a_300_character_rentprog_id_is_stored_whole(database: Database) -> None:
    """`rentprog_id` was varchar(255) on PostgreSQL: such a lead stalled all lead sync."""
    fake = _fake()
    long_id = "R" * 300
    odd = fake.add_lead(name="long id", custom_fields_values=[rentprog_field(long_id)])
    fine = fake.add_lead(name="fine", custom_fields_values=[rentprog_field("RP-1")])
    await InboxStore(database).append([event("leads", odd["id"]), event("leads", fine["id"])])

    await drain(make_worker(database, fake))

    assert {(odd["id"], long_id), (fine["id"], "RP-1")} == set(
        await rows(database, select(deals.c.id, deals.c.rentprog_id))
    )
    assert {("done",)} == set(await rows(database, select(ev.c.status)))
    assert 1 == len(fake.calls("/api/v4/leads"))


async def test_a_100000_character_name_is_stored_whole(database: Database) -> None:
    fake = _fake()
    name = "Аренда " + "я" * 100_000
    lead = fake.add_lead(name=name)
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    assert [(name,)] == await rows(database, select(deals.c.name))
    assert [("done",)] == await rows(database, select(ev.c.status))


async def test_a_lone_surrogate_escape_in_the_answer_becomes_a_replacement_character(
    database: Database,
) -> None:
    """amoCRM may send `\\ud83d` (half an emoji cut off by a length limit): the answer is
    decoded with U+FFFD in its place instead of failing the lead's whole chunk."""
    fake = _fake()
    odd = fake.add_lead(name="Kia \ud83d Rio", custom_fields_values=[rentprog_field("RP-\udc00")])
    fine = fake.add_lead(name="Hyundai 😀")
    await InboxStore(database).append([event("leads", odd["id"]), event("leads", fine["id"])])
    worker = make_worker(database, fake)

    await drain(worker)

    stored = dict(await rows(database, select(deals.c.id, deals.c.name)))
    assert {odd["id"]: "Kia \ufffd Rio", fine["id"]: "Hyundai 😀"} == stored
    assert [("RP-\ufffd",)] == await rows(
        database, select(deals.c.rentprog_id).where(deals.c.id == odd["id"])
    )
    assert {("done",)} == set(await rows(database, select(ev.c.status)))
    assert 1 == len(fake.calls("/api/v4/leads"))


async def test_an_answer_over_the_default_cap_fails_only_the_lead_that_makes_it(
    database: Database,
) -> None:
    """A lead whose answer alone is over 32 MiB is split off; its neighbours are stored."""
    fake = _fake()
    good = [fake.add_lead(name=f"good {n}")["id"] for n in range(3)]
    huge = fake.add_lead(name="x" * (33 * MIB))["id"]
    await InboxStore(database).append(
        [event("leads", i) for i in [*good, huge]] + [event("leads", huge, "status")]
    )

    await drain(make_worker(database, fake))

    assert set(good) == {row[0] for row in await rows(database, select(deals.c.id))}
    by_entity = await _events_by_entity(database)
    assert all(by_entity[i] == {("done", None)} for i in good)
    [(status, error)] = by_entity[huge]
    assert status == "failed"
    assert error is not None
    assert "33554432" in error
    assert "larger" in error


async def test_an_answer_over_a_tuned_cap_is_split_until_the_big_lead_is_alone(
    database: Database,
) -> None:
    fake = _fake()
    ids = [fake.add_lead(name=f"lead {n}")["id"] for n in range(8)]
    big = ids[5]
    fake.update_lead(big, name="b" * 50_000)
    await InboxStore(database).append([event("leads", i) for i in ids])
    worker = make_worker(database, fake, max_answer_bytes=20_000)

    await drain(worker)

    assert set(ids) - {big} == {row[0] for row in await rows(database, select(deals.c.id))}
    by_entity = await _events_by_entity(database)
    assert {("failed",)} == {(s,) for s, _ in by_entity[big]}
    assert all(by_entity[i] == {("done", None)} for i in ids if i != big)
    # 8 → 4+4 → 2+2 (the big half) → 1+1: the bisection, not one call per lead.
    assert len(fake.calls("/api/v4/leads")) == 7


Refuse = Callable[..., Awaitable[None]]


@pytest.fixture
async def refuse_deals_named(database: Database) -> AsyncIterator[Refuse]:
    """Makes the database itself refuse one lead's row, as a CHECK would, by a trigger that
    is dropped again after the test (the PostgreSQL database is shared by the run)."""

    async def refuse(name: str, sqlstate: str = "23514") -> None:
        async with database.write() as conn:
            if database.dialect == "sqlite":
                await conn.execute(
                    text(
                        "CREATE TRIGGER refuse_poison BEFORE INSERT ON amocrm_deals "
                        f"WHEN NEW.name = '{name}' "
                        "BEGIN SELECT RAISE(ABORT, 'the poison lead is refused'); END"
                    )
                )
                return
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.name = '{name}' OR '{name}' = '*' THEN RAISE EXCEPTION "
                    f"'the poison lead is refused' USING ERRCODE = '{sqlstate}'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER refuse_poison BEFORE INSERT ON amocrm_deals "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
                )
            )

    yield refuse
    async with database.write() as conn:
        if database.dialect == "sqlite":
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_poison"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS refuse_poison ON amocrm_deals"))
            await conn.execute(text("DROP FUNCTION IF EXISTS refuse_poison()"))


async def test_one_refused_lead_among_good_ones_fails_alone_with_the_database_reason(
    database: Database, refuse_deals_named: Refuse
) -> None:
    fake = _fake()
    ids = [fake.add_lead(name=f"good {n}")["id"] for n in range(9)]
    poison = fake.add_lead(name="poison")["id"]
    ids.insert(4, poison)
    await refuse_deals_named("poison")
    inbox = InboxStore(database)
    await inbox.append([event("leads", i) for i in ids] + [event("leads", poison, "status")])

    await drain(make_worker(database, fake))

    assert set(ids) - {poison} == {row[0] for row in await rows(database, select(deals.c.id))}
    by_entity = await _events_by_entity(database)
    assert all(by_entity[i] == {("done", None)} for i in ids if i != poison)
    [(status, error)] = by_entity[poison]
    assert status == "failed"
    assert error is not None
    assert "the poison lead is refused" in error
    assert len(error) <= 500
    # No refetch: the answer is split, not the call.
    assert 1 == len(fake.calls("/api/v4/leads"))
    # The event is failed on its first attempt: the refusal was reproduced on its own.
    assert [(1,), (1,)] == await rows(
        database, select(ev.c.attempts).where(ev.c.entity_id == poison)
    )


async def test_a_rentprog_id_too_long_for_the_index_fails_only_its_lead(
    database: Database,
) -> None:
    """On PostgreSQL a btree entry holds at most ~2.7 kB: a RentProg ID of random text longer
    than that is refused by the index (program_limit_exceeded, an OperationalError), alone."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite indexes hold any length")
    fake = _fake()
    noise = "".join(random.Random(7).choices(string.ascii_letters + string.digits, k=10_000))
    bad = fake.add_lead(name="bad", custom_fields_values=[rentprog_field(noise)])["id"]
    good = fake.add_lead(name="good", custom_fields_values=[rentprog_field("RP-2")])["id"]
    await InboxStore(database).append([event("leads", bad), event("leads", good)])

    await drain(make_worker(database, fake))

    assert [(good,)] == await rows(database, select(deals.c.id))
    by_entity = await _events_by_entity(database)
    [(status, error)] = by_entity[bad]
    assert status == "failed"
    assert error is not None
    assert "index row" in error
    assert by_entity[good] == {("done", None)}


async def test_a_database_refusing_every_write_spends_no_attempts(
    database: Database, refuse_deals_named: Refuse
) -> None:
    """A full disk (SQLSTATE 53100) is the database being unavailable, not the data being
    wrong: nothing is failed, and the events go back with their attempt given back."""
    if database.dialect != "postgresql":
        pytest.skip("a trigger can raise an arbitrary SQLSTATE on PostgreSQL only")
    fake = _fake()
    ids = [fake.add_lead(name=f"lead {n}")["id"] for n in range(4)]
    await refuse_deals_named("*", sqlstate="53100")
    await InboxStore(database).append([event("leads", i) for i in ids])
    worker = make_worker(database, fake)

    with pytest.raises(Exception, match="poison lead is refused"):
        await worker.run_once()

    assert {("pending", 0)} == set(await rows(database, select(ev.c.status, ev.c.attempts)))


async def test_catchup_stores_a_page_with_a_lone_surrogate(database: Database) -> None:
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)
    client = _client(fake)
    run = reconciler(database, client)
    await run.run()  # the first run sets the watermark at "now"
    odd = fake.add_lead(name="half \ud83d emoji")["id"]

    report = await reconciler(database, client).run()

    assert report.complete
    assert [(odd, "half \ufffd emoji")] == await rows(database, select(deals.c.id, deals.c.name))
    await client.aclose()


async def test_catchup_page_over_the_cap_skips_the_lead_with_a_clear_reason(
    database: Database, make_settings: Callable[..., Settings]
) -> None:
    """A tuned AMOSYNC_API_MAX_ANSWER_BYTES reaches the service's client; catch-up skips the
    lead over it and records it failed with the reason (tests/integration/
    test_catchup_oversize.py has the rest)."""
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    settings = make_settings(api_max_answer_bytes=65_536)
    client = build_client(settings, database, purpose=CATCHUP, transport=transport)
    await reconciler(database, client).run()
    big = fake.add_lead(name="b" * 100_000)["id"]

    report = await reconciler(database, client).run()

    assert report.complete
    [(status, error)] = (await _events_by_entity(database))[big]
    assert status == "failed"
    assert error is not None
    assert "larger than 65536 bytes" in error
    await client.aclose()


async def test_catchup_leaves_a_refused_lead_to_the_worker_and_stores_the_rest(
    database: Database, refuse_deals_named: Refuse
) -> None:
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)
    client = _client(fake)
    await reconciler(database, client).run()
    good = [fake.add_lead(name=f"good {n}")["id"] for n in range(5)]
    poison = fake.add_lead(name="poison")["id"]
    await refuse_deals_named("poison")

    report = await reconciler(database, client).run()

    assert report.complete
    assert set(good) == {row[0] for row in await rows(database, select(deals.c.id))}
    assert [(poison, "pending")] == await rows(database, select(ev.c.entity_id, ev.c.status))
    # The worker fetches it once more and fails it with the database's reason.
    await drain(make_worker(database, fake))
    [(status, error)] = await rows(database, select(ev.c.status, ev.c.last_error))
    assert status == "failed"
    assert error is not None
    assert "the poison lead is refused" in error
    await client.aclose()


async def test_a_webhook_with_overlong_names_is_stored_not_refused_with_503(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """`request_id` is varchar(64), `entity` and `action` varchar(32): a longer request id
    header or action key failed the insert on PostgreSQL, and with it every webhook of the
    same group commit, on every redelivery. They are text columns now (0006): kept whole."""
    body = fixture("webhook_leads_add_2025_unirock")
    assert b"leads%5Badd%5D" in body
    odd_action = body.replace(b"leads%5Badd%5D", b"leads%5B" + b"a" * 40 + b"%5D")
    async with running(make_settings(amocrm_subdomain=None)) as client:
        long_id = await client.post(
            SECRET_URL, content=body, headers={**FORM, "X-amoCRM-RequestId": "r" * 100}
        )
        long_action = await client.post(SECRET_URL, content=odd_action, headers=FORM)

    assert (200, 200) == (long_id.status_code, long_action.status_code)
    assert {("r" * 100, "add"), (None, "a" * 40)} == set(
        await rows(database, select(ev.c.request_id, ev.c.action))
    )


async def test_a_chunk_of_only_oversized_leads_fails_them_and_stores_nothing(
    database: Database,
) -> None:
    fake = _fake()
    ids = [fake.add_lead(name=c * 30_000)["id"] for c in "ab"]
    await InboxStore(database).append([event("leads", i) for i in ids])

    await drain(make_worker(database, fake, max_answer_bytes=20_000))

    assert [] == await rows(database, select(deals.c.id))
    assert {("failed",)} == set(await rows(database, select(ev.c.status)))


async def test_an_unexplained_refusal_of_one_lead_spends_its_attempts_then_fails(
    database: Database, refuse_deals_named: Refuse
) -> None:
    """An error that is neither the data's nor a database outage (here XX000, internal
    error) is split off like a refusal, but retried with backoff until max_attempts."""
    if database.dialect != "postgresql":
        pytest.skip("a trigger can raise an arbitrary SQLSTATE on PostgreSQL only")
    fake = _fake()
    good = [fake.add_lead(name=f"good {n}")["id"] for n in range(3)]
    poison = fake.add_lead(name="poison")["id"]
    await refuse_deals_named("poison", sqlstate="XX000")
    await InboxStore(database).append([event("leads", i) for i in [*good, poison]])
    worker = Worker(
        database,
        InboxStore(database),
        _client(fake),
        RentProgField(RENTPROG_FIELD_ID),
        WorkerConfig(linger=0.0, retry_base_delay=0.0, max_attempts=3),
    )

    assert 4 == await worker.run_once()
    assert set(good) == {row[0] for row in await rows(database, select(deals.c.id))}
    [(status, attempts, error)] = await rows(
        database,
        select(ev.c.status, ev.c.attempts, ev.c.last_error).where(ev.c.entity_id == poison),
    )
    assert (status, attempts) == ("pending", 1)
    assert error is not None
    assert "the poison lead is refused" in error

    await drain(worker)
    assert [("failed", 3)] == await rows(
        database, select(ev.c.status, ev.c.attempts).where(ev.c.entity_id == poison)
    )
