"""Stage history (amocrm_deal_stage_history) from its three sources, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from alembic import command
from sqlalchemy import insert, select

from amosync.amocrm import AmoClient
from amosync.catchup.budget import BACKFILL, ApiBudget
from amosync.catchup.history import STATE_KEY, HistoryBackfill
from amosync.catchup.state import load
from amosync.core.answer import map_answer
from amosync.core.stage_events import StageChange, stage_change
from amosync.db import migrate
from amosync.db.database import Database
from amosync.db.engine import create_sync_engine
from amosync.db.tables import deal_stage_history, deals
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import DEFAULT_TOKEN, FakeAmoState
from amosync.testing.fake_fields import (
    DEFAULT_PIPELINE_ID,
    DEFAULT_STATUS_ID,
    DEFAULT_USER_ID,
    STATUS_LOST,
    STATUS_WON,
)
from amosync.testing.fake_reference import SECOND_PIPELINE_ID, SECOND_STATUS_ID, SECOND_USER_ID
from amosync.upsert.stage_history import (
    EVENTS_API,
    FIRST_SEEN,
    MATCH_AFTER,
    MATCH_BEFORE,
    OBSERVED,
    record_events,
)
from amosync.worker.apply import apply_fetched

# The fixtures catch-up's tests use (a fake amoCRM a little behind the clock, a client
# logging its calls as catch-up), imported under their own names so pytest finds them.
from tests.integration.test_catchup import client as client
from tests.integration.test_catchup import fake as fake
from tests.integration.test_catchup import reconciler
from tests.integration.test_catchup import transport as transport
from tests.integration.test_verify import RENTPROG, store, verify

BASE = "https://testaccount.amocrm.ru"
DAY = 86400
Factory = Callable[..., Settings]


def test_upgrade_gives_stored_deals_a_first_seen_row(db_url: str) -> None:
    """Deals stored before the table existed start their history at the stage we hold, at
    their updated_at (synced_at when amoCRM gave none), like a deal stored for the first time;
    a row without a stage starts none."""
    command.downgrade(migrate.alembic_config(db_url), "0010_deal_details")
    engine = create_sync_engine(db_url)
    updated = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    synced = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for deal_id, updated_at, status in (
                (1, updated, 47000001),
                (2, None, 47000001),
                (3, updated, None),
            ):
                conn.execute(
                    insert(deals).values(
                        id=deal_id,
                        pipeline_id=7000001,
                        status_id=status,
                        updated_at=updated_at,
                        custom_fields=[],
                        raw={},
                        synced_at=synced,
                    )
                )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            h = deal_stage_history.c
            got = conn.execute(
                select(
                    h.deal_id,
                    h.pipeline_id,
                    h.status_id,
                    h.from_status_id,
                    h.changed_at,
                    h.source,
                    h.amocrm_event_id,
                ).order_by(h.deal_id)
            ).all()
    finally:
        engine.dispose()

    assert [
        (1, 7000001, 47000001, None, updated, "first_seen", None),
        (2, 7000001, 47000001, None, synced, "first_seen", None),
    ] == [tuple(r) for r in got]


# -- the fake records stage changes ----------------------------------------------------


@pytest.fixture
async def backfill_client(
    make_settings: Factory, database: Database, transport: httpx.ASGITransport
) -> AsyncIterator[AmoClient]:
    client = build_client(make_settings(), database, purpose=BACKFILL, transport=transport)
    yield client
    await client.aclose()


async def test_fake_records_a_move_through_its_control_paths(
    fake: FakeAmoState, transport: httpx.ASGITransport
) -> None:
    """Moving a lead (the control page's move, or any update of status/pipeline) writes
    `lead_status_changed` with before/after, time and author; other edits write none; the
    events API serves them under filter[type] with pagination."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        moved = await http.post(f"/_fake/leads/{lead['id']}/move", json={"status_id": STATUS_WON})
        renamed = await http.post(f"/_fake/leads/{lead['id']}", json={"name": "renamed"})
    fake.update_lead(lead["id"], status_id=DEFAULT_STATUS_ID, pipeline_id=SECOND_PIPELINE_ID)

    assert (200, 200) == (moved.status_code, renamed.status_code)
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
        first = await http.get("/api/v4/events?filter[type][]=lead_status_changed&limit=1")
        second = await http.get(first.json()["_links"]["next"]["href"])
        none = await http.get("/api/v4/events?filter[type][]=lead_restored")
    newest, older = first.json()["_embedded"]["events"][0], second.json()["_embedded"]["events"][0]
    assert 204 == none.status_code
    assert "next" not in second.json()["_links"]
    assert (lead["id"], "lead_status_changed", DEFAULT_USER_ID) == (
        older["entity_id"],
        older["type"],
        older["created_by"],
    )
    stage = [{"lead_status": {"id": DEFAULT_STATUS_ID, "pipeline_id": DEFAULT_PIPELINE_ID}}]
    assert stage == older["value_before"]
    assert [{"lead_status": {"id": STATUS_WON, "pipeline_id": DEFAULT_PIPELINE_ID}}] == older[
        "value_after"
    ]
    assert [{"lead_status": {"id": DEFAULT_STATUS_ID, "pipeline_id": SECOND_PIPELINE_ID}}] == (
        newest["value_after"]
    )
    assert older["created_at"] <= newest["created_at"]


# -- first_seen and observed (the upsert) ----------------------------------------------

H = deal_stage_history.c
COLUMNS = (H.deal_id, H.from_status_id, H.status_id, H.source, H.changed_by)


async def history(database: Database, *columns: Any) -> list[tuple[Any, ...]]:
    async with database.read() as conn:
        query = select(*(columns or COLUMNS)).order_by(H.deal_id, H.changed_at, H.id)
        return [tuple(r) for r in (await conn.execute(query)).all()]


async def stored_updated_at(database: Database, deal_id: int) -> datetime:
    async with database.read() as conn:
        value = (await conn.execute(select(deals.c.updated_at).where(deals.c.id == deal_id))).one()
    return cast(datetime, value[0])


async def test_first_seen_then_observed_moves_only(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """A deal stored for the first time gets `first_seen`; a copy in another stage or
    pipeline `observed` at its updated_at (author unknown); the same copy again, or an edit
    that keeps the stage, adds nothing."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    await store(database, client, "leads", [lead["id"]])
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], name="renamed")
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    await store(database, client, "leads", [lead["id"]])
    won_at = await stored_updated_at(database, lead["id"])
    fake.update_lead(lead["id"], pipeline_id=SECOND_PIPELINE_ID)
    await store(database, client, "leads", [lead["id"]])

    got = await history(
        database, H.from_pipeline_id, H.pipeline_id, H.status_id, H.source, H.changed_by
    )
    assert [
        (None, DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, FIRST_SEEN, None),
        (DEFAULT_PIPELINE_ID, DEFAULT_PIPELINE_ID, STATUS_WON, OBSERVED, None),
        (DEFAULT_PIPELINE_ID, SECOND_PIPELINE_ID, STATUS_WON, OBSERVED, None),
    ] == got
    assert won_at == (await history(database, H.changed_at))[1][0]


async def test_an_older_copy_that_is_not_stored_records_nothing(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Observed rows follow what is stored: a reordered older copy (refused by newer-wins)
    in another stage is no move."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    old = await client.fetch_by_ids("leads", [lead["id"]])
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    await store(database, client, "leads", [lead["id"]])

    async with database.write() as conn:
        await apply_fetched(conn, map_answer("leads", [lead["id"]], old, RENTPROG), [])

    assert [(lead["id"], None, STATUS_WON, FIRST_SEEN, None)] == await history(database)


# -- events_api (catch-up) and its dedupe with observed ---------------------------------


async def test_catchup_events_replace_observed_rows(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Observed first, event after: catch-up's `lead_status_changed` events take the place
    of the observed rows for the same moves, with amoCRM's time, author and event id."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    await store(database, client, "leads", [lead["id"]])
    await reconciler(database, client).run()
    fake.update_lead(lead["id"], status_id=SECOND_STATUS_ID, updated_by=SECOND_USER_ID)
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    await store(database, client, "leads", [lead["id"]])
    observed = await history(database)

    report = await reconciler(database, client).run()
    again = await reconciler(database, client).run()

    assert [OBSERVED, OBSERVED] == [r[3] for r in observed[1:]]
    assert (2, 0) == (report.stage_changes, again.stage_changes)
    assert [
        (lead["id"], None, DEFAULT_STATUS_ID, FIRST_SEEN, None),
        (lead["id"], DEFAULT_STATUS_ID, SECOND_STATUS_ID, EVENTS_API, SECOND_USER_ID),
        (lead["id"], SECOND_STATUS_ID, STATUS_WON, EVENTS_API, DEFAULT_USER_ID),
    ] == await history(database)
    ids = [e["id"] for e in fake.events.items if e["type"] == "lead_status_changed"]
    assert sorted(ids) == sorted(r[0] for r in await history(database, H.amocrm_event_id) if r[0])


async def test_observed_after_its_event_is_not_written(
    database: Database,
    client: AmoClient,
    backfill_client: AmoClient,
    fake: FakeAmoState,
) -> None:
    """Event first, observed after: a copy showing a move already read from the events API
    adds no row."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    await HistoryBackfill(database, backfill_client, ApiBudget(database, 1000, 500)).run(DAY)

    await store(database, client, "leads", [lead["id"]])

    assert [
        (lead["id"], None, DEFAULT_STATUS_ID, FIRST_SEEN, None),
        (lead["id"], DEFAULT_STATUS_ID, STATUS_WON, EVENTS_API, DEFAULT_USER_ID),
    ] == await history(database)


async def test_first_seen_is_skipped_when_history_already_ends_there(
    database: Database, client: AmoClient, backfill_client: AmoClient, fake: FakeAmoState
) -> None:
    """A deal whose moves were loaded (backfill --history) before the deal itself gets no
    first_seen row repeating the stage its history ends in."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    await HistoryBackfill(database, backfill_client, ApiBudget(database, 1000, 500)).run(DAY)

    await store(database, client, "leads", [lead["id"]])

    assert [(lead["id"], DEFAULT_STATUS_ID, STATUS_WON, EVENTS_API, DEFAULT_USER_ID)] == (
        await history(database)
    )


def change(event_id: str, deal_id: int, frm: int, to: int, at: datetime) -> StageChange:
    return StageChange(event_id, deal_id, 1, to, 1, frm, at, 5)


async def observe(database: Database, deal_id: int, frm: int, to: int, at: datetime) -> None:
    async with database.write() as conn:
        await conn.execute(
            insert(deal_stage_history).values(
                deal_id=deal_id,
                pipeline_id=1,
                status_id=to,
                from_pipeline_id=1,
                from_status_id=frm,
                changed_at=at,
                source=OBSERVED,
            )
        )


async def test_same_transition_means_same_deal_same_move_close_in_time(
    database: Database,
) -> None:
    """An event replaces the earliest observed row of the same deal and move from its time
    up to an hour later; another deal, another move, or an observation more than an hour
    after it (or before it) is a different transition. A→B, B→A, A→B within the hour with
    one observed A→B: the observed row goes, every event stays, nothing doubles."""
    t = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    await observe(database, 1, 10, 20, t + timedelta(minutes=5))  # the second A→B's copy
    await observe(database, 2, 10, 20, t)  # other deal
    await observe(database, 3, 10, 30, t)  # other move
    await observe(database, 4, 10, 20, t + MATCH_BEFORE + timedelta(seconds=1))  # too late
    await observe(database, 5, 10, 20, t - MATCH_AFTER - timedelta(seconds=1))  # before

    async with database.write() as conn:
        new = await record_events(
            conn,
            [
                change("e1", 1, 10, 20, t - timedelta(minutes=30)),
                change("e2", 1, 20, 10, t - timedelta(minutes=20)),
                change("e3", 1, 10, 20, t),
                change("e3", 1, 10, 20, t),  # the same event twice in a page
                change("e4", 3, 10, 20, t),
                change("e5", 4, 10, 20, t),
                change("e6", 5, 10, 20, t),
            ],
        )

    got = await history(database, H.deal_id, H.from_status_id, H.status_id, H.amocrm_event_id)
    assert 6 == new
    assert [
        (1, 10, 20, "e1"),
        (1, 20, 10, "e2"),
        (1, 10, 20, "e3"),
        (2, 10, 20, None),
        (3, 10, 30, None),
        (3, 10, 20, "e4"),
        (4, 10, 20, "e5"),
        (4, 10, 20, None),
        (5, 10, 20, None),
        (5, 10, 20, "e6"),
    ] == got


async def test_catchup_makes_no_extra_calls(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Stage changes come in catch-up's one events call (one more type in its filter): an
    idle run is still 4 calls, a run after moves too."""
    lead = fake.add_lead()
    await store(database, client, "leads", [lead["id"]])
    await reconciler(database, client).run()
    idle = await reconciler(database, client).run()
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    fake.update_lead(lead["id"], status_id=STATUS_LOST)
    before = len(fake.requests)

    busy = await reconciler(database, client).run()

    paths = [r.path for r in fake.requests[before:]]
    assert (4, 4, 2) == (idle.calls, busy.calls, busy.stage_changes)
    assert 1 == paths.count("/api/v4/events")
    query = fake.calls("/api/v4/events")[-1].query
    assert "lead_status_changed" in query
    assert "lead_deleted" in query


async def test_untrusted_event_bodies_are_skipped_not_fatal(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """Events with missing fields, wrong types, absurd sizes or characters PostgreSQL
    refuses are left out; the good event of the same page is stored and the run completes."""
    at = int(time.time()) - 60
    good = {"lead_status": {"id": STATUS_WON, "pipeline_id": DEFAULT_PIPELINE_ID}}
    base = {
        "type": "lead_status_changed",
        "entity_type": "lead",
        "entity_id": 77,
        "created_by": 0,
        "created_at": at,
        "value_before": [],
        "value_after": [good],
        "account_id": fake.account_id,
    }
    bad: list[dict[str, Any]] = [
        {"id": None},
        {"id": "x" * 1_000_000},
        {"id": "nul\x00id"},
        {"id": 12345},
        {"id": "b1", "entity_id": "seventy-seven"},
        {"id": "b2", "entity_id": 2**70},
        {"id": "b3", "value_after": "moved"},
        {"id": "b4", "value_after": [{"lead_status": {"id": "won"}}]},
        {"id": "b5", "value_after": [{"lead_status": None}] * 50_000},
        {"id": "b6", "value_after": []},
        {"id": "b7", "entity_type": "contact"},
        {"id": "b8", "created_at": at + 10 * DAY},  # from the future
    ]
    for n, override in enumerate(bad):
        fake.events.items.append({**base, "id": f"pad{n}", **override})
    fake.events.items.append(
        {**base, "id": "ok1", "created_by": "robot", "value_before": {"lead_status": "x"}}
    )
    fake.events.items.append({**base, "id": "ok2", "entity_id": "78"})

    report = await reconciler(database, client).run(since=300)

    assert (True, 3) == (report.complete, report.stage_changes)
    # The client drops NUL from every answer (core/nul.py): that id arrives as "nulid".
    assert [(77, "ok1", None), (77, "nulid", 0), (78, "ok2", 0)] == await history(
        database, H.deal_id, H.amocrm_event_id, H.changed_by
    )


# -- backfill --history ----------------------------------------------------------------


def old_move(fake: FakeAmoState, deal_id: int, days_ago: float, to: int = STATUS_WON) -> None:
    fake.events.record(
        "lead_status_changed",
        "lead",
        deal_id,
        int(time.time() - days_ago * DAY),
        account_id=fake.account_id,
        created_by=SECOND_USER_ID,
        value_before=[{"lead_status": {"id": DEFAULT_STATUS_ID, "pipeline_id": 1}}],
        value_after=[{"lead_status": {"id": to, "pipeline_id": 1}}],
    )


async def test_history_backfill_resumes_within_the_budget_and_reaches_further_later(
    database: Database, backfill_client: AmoClient, fake: FakeAmoState
) -> None:
    """`backfill --history` walks back in week windows, newest first: a spent budget stops
    it (state kept, mid-window), the next run continues without reading a page twice, and
    a later run with a longer --since only walks the extra weeks."""
    for n in range(150):  # two pages of the newest week
        old_move(fake, 1000 + n, 3)
    old_move(fake, 1, 40)
    old_move(fake, 2, 100)  # beyond the default 90 days
    seen: list[tuple[int, int, int, bool]] = []

    def job(budget: int) -> HistoryBackfill:
        return HistoryBackfill(
            database,
            backfill_client,
            ApiBudget(database, budget, 500),
            wait=False,
            on_progress=lambda *args: seen.append(args),
        )

    stopped = await job(1).run()
    state = await load(database, STATE_KEY) or {}
    rest = await job(1000).run()
    calls_90 = len(fake.calls("/api/v4/events"))
    done = await job(1000).run()
    after_done = seen[-1]
    further = await job(1000).run(120 * DAY)

    assert ("budget", 100, 1) == (stopped.stopped, stopped.loaded, stopped.calls)
    assert 2 == state["window"]["page"]
    assert (None, 51, 151) == (rest.stopped, rest.loaded, rest.total)
    assert 13 + 1 == calls_90  # 13 weeks in 90 days, the newest one with two pages
    assert (0, 0, 90) == (done.loaded, done.calls, done.days)
    assert (1, 5, 152) == (further.loaded, further.calls, further.total)
    assert (151, 90, 90, True) == after_done
    assert (152, 120, 120, True) == seen[-1]
    assert 152 == len(await history(database))


async def test_history_backfill_waits_for_the_budget_by_default(
    database: Database, backfill_client: AmoClient
) -> None:
    """With the budget spent and waiting on, it waits (and says so) instead of spending."""
    waits: list[tuple[str, float]] = []
    job = HistoryBackfill(
        database, backfill_client, ApiBudget(database, 0, 500), on_wait=lambda *a: waits.append(a)
    )

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(job.run(), 0.5)

    assert [("budget", 3600.0)] == waits[:1]
    assert [] == await history(database)


async def test_verification_repairing_a_stage_records_the_move(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """A stage the copy had wrong (amoCRM changed it without a newer updated_at) and
    verification overwrote is a move like any other: `observed`."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    await store(database, client, "leads", [lead["id"]])
    fake.leads[lead["id"]].fields["status_id"] = STATUS_WON  # no updated_at bump

    report = await verify(database, client)

    assert 1 == report.repaired
    assert [
        (lead["id"], None, DEFAULT_STATUS_ID, FIRST_SEEN, None),
        (lead["id"], DEFAULT_STATUS_ID, STATUS_WON, OBSERVED, None),
    ] == await history(database)


async def test_an_event_stored_while_the_move_is_being_stored_waits_for_it(
    database: Database, client: AmoClient, fake: FakeAmoState
) -> None:
    """The worker stores a move while catch-up stores its event: the second to reach the deal
    waits for the first (the deal row's lock on PostgreSQL, write turns on SQLite), then
    sees its row, so the move is in the history once."""
    lead = fake.add_lead(status_id=DEFAULT_STATUS_ID)
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], status_id=STATUS_WON)
    objects = await client.fetch_by_ids("leads", [lead["id"]])
    moved = stage_change(fake.events.items[-1], datetime.now(UTC) + timedelta(hours=1))
    assert moved is not None
    holding = asyncio.Event()

    async def worker() -> None:
        async with database.write() as conn:
            await apply_fetched(conn, map_answer("leads", [lead["id"]], objects, RENTPROG), [])
            holding.set()
            await asyncio.sleep(0.5)  # still uncommitted while catch-up starts

    async def catchup() -> None:
        await holding.wait()
        async with database.write() as conn:
            await record_events(conn, [moved])

    await asyncio.gather(worker(), catchup())

    assert [
        (lead["id"], None, DEFAULT_STATUS_ID, FIRST_SEEN, None),
        (lead["id"], DEFAULT_STATUS_ID, STATUS_WON, EVENTS_API, DEFAULT_USER_ID),
    ] == await history(database)


async def test_history_backfill_falls_back_to_the_comma_range(
    database: Database, backfill_client: AmoClient, fake: FakeAmoState
) -> None:
    """An account refusing `filter[created_at][from]`/`[to]` (the docs show both forms) is
    asked `from,to`, and the state remembers it for the next run."""
    fake.events.created_at_forms = frozenset({"comma", "single"})
    old_move(fake, 5, 2)

    report = await HistoryBackfill(database, backfill_client, ApiBudget(database, 1000, 500)).run(
        14 * DAY
    )

    statuses = [r.status for r in fake.calls("/api/v4/events")]
    assert (None, 1) == (report.stopped, report.total)
    assert [400, 200, 204] == statuses
    assert True is (await load(database, STATE_KEY) or {}).get("comma_range")
