"""What gets stored (issue #18): no future state, n8n pushes as hints, deletions only on
proof, failures resolved by a later copy, a change feed of changes only. Both databases,
against the fake amoCRM."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from alembic import command
from sqlalchemy import insert, select, update

from amosync.catchup.budget import CATCHUP
from amosync.catchup.job import reconciler_for
from amosync.catchup.reconcile import Reconciler, entity_key
from amosync.catchup.state import load
from amosync.db import migrate
from amosync.db.database import Database
from amosync.db.engine import create_sync_engine
from amosync.db.tables import contacts, deals
from amosync.db.tables import webhook_events as ev
from amosync.inbox import InboxStore
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import FakeAmoState, Fault, create_fake_amocrm
from amosync.web.app import create_app
from tests.integration.test_worker import drain, event, make_worker, rows

N8N_HEADERS = {"Content-Type": "application/json", "X-Amosync-Secret": "s3cret-path-0123456789"}
YEAR_9999 = 253_402_214_400 - 86_400  # 9999-12-30, still a valid datetime


async def deal_rows(database: Database) -> dict[int, tuple[Any, ...]]:
    """id → (name, updated_at, is_deleted, synced_at)."""
    query = select(
        deals.c.id, deals.c.name, deals.c.updated_at, deals.c.is_deleted, deals.c.synced_at
    )
    return {r[0]: r[1:] for r in await rows(database, query)}


async def event_rows(database: Database) -> list[tuple[Any, ...]]:
    query = select(ev.c.source, ev.c.entity_id, ev.c.status, ev.c.last_error).order_by(ev.c.id)
    return await rows(database, query)


async def push_to_n8n(settings: Settings, body: Any) -> httpx.Response:
    app = create_app(settings, run_worker=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http,
    ):
        return await http.post(
            "/amocrm/process-webhook", content=orjson.dumps(body), headers=N8N_HEADERS
        )


# -- 1. Frozen deals: no source writes the future ------------------------------------------


async def test_n8n_push_is_a_hint_the_worker_fetches_the_truth(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A pushed lead with updated_at in year 9999 stores no deal; its id is queued and the
    worker stores amoCRM's own state, which later changes still update."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Real name")
    forged = {**lead, "name": "Forged", "updated_at": YEAR_9999}

    answer = await push_to_n8n(make_settings(), forged)

    assert (200, {"ok": True, "stored": 1, "mode": "upserted"}) == (
        answer.status_code,
        answer.json(),
    )
    assert {} == await deal_rows(database)
    assert [("n8n", lead["id"], "pending", None)] == await event_rows(database)

    await drain(make_worker(database, fake))
    assert "Real name" == (await deal_rows(database))[lead["id"]][0]

    fake.update_lead(lead["id"], name="Renamed")
    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    assert "Renamed" == (await deal_rows(database))[lead["id"]][0]


async def test_n8n_push_of_an_unknown_id_creates_no_deal(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """An id amoCRM does not have (single fetch: 204) leaves no row behind."""
    fake = FakeAmoState(rate_limit_rps=None)
    pushed = {"id": 77_000_001, "pipeline_id": 1, "name": "Ghost", "updated_at": YEAR_9999}

    assert 200 == (await push_to_n8n(make_settings(), [pushed])).status_code
    await drain(make_worker(database, fake))

    assert {} == await deal_rows(database)
    assert [("n8n", 77_000_001, "done", None)] == await event_rows(database)


async def test_a_future_updated_at_from_amocrm_is_not_stored_and_is_retried(
    database: Database,
) -> None:
    """amoCRM answering an updated_at an hour ahead: nothing stored, the event goes back to
    the queue with the reason, and fails with it once out of attempts; the rest of the batch
    is stored."""
    fake = FakeAmoState(rate_limit_rps=None)
    odd = fake.add_lead(name="From the future")
    fine = fake.add_lead(name="Fine")
    fake.leads[odd["id"]].fields["updated_at"] = int(time.time()) + 3600
    await InboxStore(database).append([event("leads", odd["id"]), event("leads", fine["id"])])

    await drain(make_worker(database, fake, max_attempts=1))

    assert [fine["id"]] == list(await deal_rows(database))
    by_id = {r[1]: r for r in await event_rows(database)}
    assert "failed" == by_id[odd["id"]][2]
    assert "ahead of the database clock" in by_id[odd["id"]][3]
    assert "done" == by_id[fine["id"]][2]


async def test_a_tuned_clock_skew_accepts_what_it_allows(database: Database) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Ahead by an hour")
    fake.leads[lead["id"]].fields["updated_at"] = int(time.time()) + 3600
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake, max_clock_skew=7200.0))

    assert "Ahead by an hour" == (await deal_rows(database))[lead["id"]][0]


async def test_a_stored_future_row_is_repaired_by_a_real_copy(database: Database) -> None:
    """A row frozen by an earlier version (updated_at in 9999) takes amoCRM's state."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Real")
    frozen = datetime.fromtimestamp(YEAR_9999, UTC)
    async with database.write() as conn:
        await conn.execute(
            insert(deals).values(
                id=lead["id"],
                name="Frozen",
                updated_at=frozen,
                is_deleted=False,
                custom_fields=[],
                raw={},
                synced_at=datetime.now(UTC),
            )
        )
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    name, updated_at, _, _ = (await deal_rows(database))[lead["id"]]
    assert ("Real", lead["updated_at"]) == (name, int(updated_at.timestamp()))


# -- 3. Deleted only on proof --------------------------------------------------------------


async def test_string_ids_in_the_answer_are_the_same_ids(database: Database) -> None:
    fake = FakeAmoState(rate_limit_rps=None, string_ids=True)
    lead = fake.add_lead(name="Text id")
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    assert ("Text id", False) == (await deal_rows(database))[lead["id"]][::2]


async def test_an_id_missing_from_the_list_answer_is_fetched_alone_and_stored(
    database: Database,
) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Hidden from lists")
    fake.hidden_from_lists.add(lead["id"])
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    name, _, deleted, _ = (await deal_rows(database))[lead["id"]]
    assert ("Hidden from lists", False) == (name, deleted)
    assert [f"/api/v4/leads/{lead['id']}"] == [
        r.path for r in fake.calls() if r.path != "/api/v4/leads"
    ]


async def test_only_a_204_or_404_for_the_single_id_flags_a_deal_deleted(
    database: Database,
) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    gone_204 = fake.add_lead(name="a")
    gone_404 = fake.add_lead(name="b")
    await InboxStore(database).append(
        [event("leads", gone_204["id"]), event("leads", gone_404["id"])]
    )
    await drain(make_worker(database, fake))
    fake.hidden_from_lists.update({gone_204["id"], gone_404["id"]})
    fake.single_status.update({gone_204["id"]: 204, gone_404["id"]: 404})
    await InboxStore(database).append(
        [event("leads", gone_204["id"], "delete"), event("leads", gone_404["id"], "delete")]
    )

    await drain(make_worker(database, fake))

    stored = await deal_rows(database)
    assert (True, True) == (stored[gone_204["id"]][2], stored[gone_404["id"]][2])


async def test_an_error_on_the_single_fetch_flags_nothing_and_retries(
    database: Database,
) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Still here")
    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    fake.hidden_from_lists.add(lead["id"])
    fake.script_faults(*[Fault(status=500)] * 3, path_prefix=f"/api/v4/leads/{lead['id']}")
    await InboxStore(database).append([event("leads", lead["id"])])

    worker = make_worker(database, fake, retry_base_delay=60.0)
    await worker.run_once()

    assert False is (await deal_rows(database))[lead["id"]][2]
    last = (await event_rows(database))[-1]
    assert ("pending", True) == (last[2], last[3] is not None)


async def test_a_returned_lead_clears_a_false_deletion_with_the_same_updated_at(
    database: Database,
) -> None:
    """A deal flagged deleted by mistake comes back when amoCRM returns it unchanged."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Falsely deleted")
    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    async with database.write() as conn:
        await conn.execute(update(deals).values(is_deleted=True))
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    assert False is (await deal_rows(database))[lead["id"]][2]


# -- 5. Failures that resolve themselves ---------------------------------------------------


async def test_a_failed_event_is_settled_when_its_entity_is_stored_later(
    database: Database,
) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Once failed")
    old = event("leads", lead["id"])
    old.update(
        status="failed",
        attempts=10,
        last_error="amoCRM answered 502",
        received_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    await InboxStore(database).append([old])
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    statuses = [(r[2], r[3]) for r in await event_rows(database)]
    assert ["done", "done"] == [s for s, _ in statuses]
    assert "superseded" in (statuses[0][1] or "")
    assert "amoCRM answered 502" in (statuses[0][1] or "")


async def test_a_failed_event_newer_than_the_stored_state_stays_failed(
    database: Database,
) -> None:
    """Only a copy fetched after the failed event's receipt settles it."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="x")
    later = event("leads", lead["id"])
    later.update(status="failed", received_at=datetime.now(UTC) + timedelta(minutes=1))
    await InboxStore(database).append([later])
    await InboxStore(database).append([event("leads", lead["id"])])

    await drain(make_worker(database, fake))

    assert ["failed", "done"] == [r[2] for r in await event_rows(database)]


# -- 6. The change feed carries changes only -----------------------------------------------


async def test_a_refetch_of_an_unchanged_deal_does_not_move_synced_at(
    database: Database,
) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Unchanged")
    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    first = (await deal_rows(database))[lead["id"]][3]

    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    assert first == (await deal_rows(database))[lead["id"]][3]

    fake.update_lead(lead["id"], price=100)
    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    assert first < (await deal_rows(database))[lead["id"]][3]


async def test_a_deletion_of_an_entity_never_seen_creates_no_row(database: Database) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    await InboxStore(database).append(
        [event("leads", 10_999_999, "delete"), event("contacts", 20_999_999, "delete")]
    )

    await drain(make_worker(database, fake))

    assert {} == await deal_rows(database)
    assert [] == await rows(database, select(contacts.c.id))
    assert ["done", "done"] == [r[2] for r in await event_rows(database)]


async def test_a_deletion_moves_synced_at(database: Database) -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="To delete")
    await InboxStore(database).append([event("leads", lead["id"])])
    await drain(make_worker(database, fake))
    first = (await deal_rows(database))[lead["id"]][3]
    fake.delete_lead(lead["id"])
    await InboxStore(database).append([event("leads", lead["id"], "delete")])

    await drain(make_worker(database, fake))

    _, _, deleted, synced_at = (await deal_rows(database))[lead["id"]]
    assert (True, True) == (deleted, synced_at > first)


# -- catch-up takes the same rules ---------------------------------------------------------


def reconciler(settings: Settings, database: Database, fake: FakeAmoState) -> Reconciler:
    client = build_client(
        settings,
        database,
        purpose=CATCHUP,
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
    )
    return reconciler_for(settings, database, client)


async def test_catchup_stores_no_future_lead_and_keeps_its_watermark(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)
    settings = make_settings()
    await reconciler(settings, database, fake).run()
    fine = fake.add_lead(name="Fine")
    odd = fake.add_lead(name="Year 9999")
    fake.leads[odd["id"]].fields["updated_at"] = YEAR_9999

    await reconciler(settings, database, fake).run()

    assert [fine["id"]] == list(await deal_rows(database))
    state = await load(database, entity_key("leads")) or {}
    assert state["watermark"] <= time.time() + 300


async def test_catchup_deletion_event_settles_failed_events(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A failed event received before a `lead_deleted` event is settled by it (and not by
    the earlier catch-up run that stored the lead, which was requested before it)."""
    fake = FakeAmoState(rate_limit_rps=None)
    settings = make_settings()
    lead = fake.add_lead(name="Deleted later")
    await reconciler(settings, database, fake).run(since=60)
    await asyncio.sleep(2)
    failed = event("leads", lead["id"])
    failed.update(
        status="failed", last_error="x", received_at=datetime.now(UTC) - timedelta(seconds=1.5)
    )
    await InboxStore(database).append([failed])
    fake.delete_lead(lead["id"])

    await reconciler(settings, database, fake).run(since=60)

    assert True is (await deal_rows(database))[lead["id"]][2]
    assert [("done", True)] == [(r[2], "superseded" in r[3]) for r in await event_rows(database)]


def test_upgrade_drops_the_deletion_stubs_of_older_versions(db_url: str) -> None:
    """Rows older versions inserted for deletions of unknown ids go; real rows stay."""
    command.downgrade(migrate.alembic_config(db_url), "0006_event_text_columns")
    engine = create_sync_engine(db_url)
    now = datetime.now(UTC)
    real = {"updated_at": now, "name": "Real", "created_at": now, "is_deleted": True}
    stub = {"updated_at": None, "name": None, "created_at": None, "is_deleted": True}
    try:
        with engine.begin() as conn:
            for deal_id, values in ((1, real), (2, stub)):
                conn.execute(
                    insert(deals).values(
                        id=deal_id, custom_fields=[], raw={}, synced_at=now, **values
                    )
                )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            left = list(conn.execute(select(deals.c.id)).scalars())
    finally:
        engine.dispose()

    assert [1] == left
