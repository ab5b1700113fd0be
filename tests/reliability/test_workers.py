"""Scenario 4 and issue #7: several processes on one PostgreSQL database. No event is claimed
by two workers, every acknowledged event is applied, and the API rate of all workers together
stays within amoCRM's limit (the rate limiter lives in the database)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amosync.amocrm.token_store import TokenGrant, TokenStore
from amosync.db.database import Database
from amosync.oauth_setup import token_endpoint
from amosync.settings import Settings
from amosync.testing import FakeAmoState
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REDIRECT_URI
from tests.reliability.harness import (
    Fleet,
    LoadGenerator,
    deal_mismatches,
    densest_second,
    lost_acknowledged,
    query,
    report,
    seed_leads,
    status_counts,
    wait_drained,
)

# Small batches and a slow fake make the workers want far more than 7 calls per second.
BUSY = {"AMOSYNC_WORKER_BATCH_SIZE": "1", "AMOSYNC_WORKER_LINGER": "0"}


def run_fleet(
    scenario: str,
    db_url: str,
    fake: FakeAmoState,
    fake_url: str,
    tmp_path: Path,
    *,
    webs: int,
    workers: int,
    seconds: float = 4.0,
) -> None:
    fake.latency_seconds = 0.05
    lead_ids = seed_leads(fake, 43_000_001, 150)
    fleet = Fleet(db_url, fake_url, tmp_path, BUSY)
    try:
        web_procs = [fleet.web(f"web{n}") for n in range(webs)]
        for n in range(workers):
            fleet.worker(f"worker{n}")
        load = LoadGenerator(
            [w.url for w in web_procs], lead_ids, rate=50, change_every=6, fake=fake
        )
        load.start()
        time.sleep(seconds)
        result = load.stop()
        drain = wait_drained(db_url, timeout=90)
    finally:
        fleet.stop()

    counts = status_counts(db_url)
    most = fake.max_calls_in_any_window(1.0, "/api/v4/")
    per_worker = query(db_url, "SELECT id, processed FROM amosync_workers ORDER BY id")
    claimed_twice = query(
        db_url, "SELECT count(*) FROM amocrm_webhook_events WHERE status = 'done' AND attempts <> 1"
    )[0][0]
    report(
        scenario,
        webs=webs,
        workers=workers,
        posted=result.posted,
        acked=len(result.acked),
        statuses=counts,
        api_calls=len(fake.calls("/api/v4/")),
        answered_429=fake.count_429(),
        max_calls_in_any_second=most,
        events_per_worker=sorted(int(p) for _, p in per_worker),
        drain_seconds=round(drain, 1),
    )
    assert {} == lost_acknowledged(db_url, result)
    assert 0 == result.gave_up
    assert set(counts) <= {"done", "ignored"}, counts
    assert 0 == claimed_twice
    assert [] == deal_mismatches(db_url, fake, result.lead_ids)
    assert most <= 7, str(densest_second(fake))
    assert 0 == fake.count_429()
    assert workers == len([p for _, p in per_worker if p > 0]), per_worker
    # The demand (one call per event) really exceeded the limit: the limiter, not idleness,
    # kept the rate down.
    assert 7 == most


@pytest.mark.slow
def test_three_workers_share_the_rate_limit_and_never_share_an_event(
    pg_db_url: str, fake_on_port: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """Three `amosync worker` processes under load: each event claimed once, ≤ 7 calls/s."""
    fake, fake_url = fake_on_port
    run_fleet("workers-3", pg_db_url, fake, fake_url, tmp_path, webs=1, workers=3)


@pytest.mark.slow
def test_two_web_and_two_worker_processes_on_one_database(
    pg_db_url: str, fake_on_port: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """Issue #7: webhooks posted to two `serve --no-worker` processes, two workers: every event
    applied once, API rate across workers within the limit."""
    fake, fake_url = fake_on_port
    run_fleet("web-2-workers-2", pg_db_url, fake, fake_url, tmp_path, webs=2, workers=2)


@pytest.mark.slow
def test_three_workers_refresh_an_expiring_oauth_token_exactly_once(
    pg_db_url: str, fake_on_port: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """Three workers under load reach the refresh margin together: one refresh in total,
    no call ever sent with a dead token, every event done."""
    fake, fake_url = fake_on_port
    lead_ids = seed_leads(fake, 44_000_001, 40)
    settings = Settings(
        _env_file=None,
        database_url=pg_db_url,
        amocrm_base_url=fake_url,
        amocrm_client_id=FAKE_CLIENT_ID,
        amocrm_client_secret=FAKE_CLIENT_SECRET,
        amocrm_redirect_uri=FAKE_REDIRECT_URI,
    )
    margin = settings.token_refresh_margin
    # The stored token enters the refresh margin a few seconds into the run.
    asyncio.run(store_consented_tokens(settings, fake, expires_in=margin + 4.0))
    fleet = Fleet(
        pg_db_url,
        fake_url,
        tmp_path,
        {
            "AMOSYNC_AMOCRM_CLIENT_ID": FAKE_CLIENT_ID,
            "AMOSYNC_AMOCRM_CLIENT_SECRET": FAKE_CLIENT_SECRET,
            "AMOSYNC_AMOCRM_REDIRECT_URI": FAKE_REDIRECT_URI,
            **BUSY,
        },
    )
    del fleet.env["AMOSYNC_AMOCRM_LONG_LIVED_TOKEN"]
    try:
        web = fleet.web()
        for n in range(3):
            fleet.worker(f"worker{n}")
        load = LoadGenerator([web.url], lead_ids, rate=40, change_every=6, fake=fake)
        load.start()
        time.sleep(6.0)
        result = load.stop()
        wait_drained(pg_db_url, timeout=60)
    finally:
        fleet.stop()

    counts = status_counts(pg_db_url)
    versions = query(pg_db_url, "SELECT version FROM amocrm_oauth_tokens")
    report(
        "oauth-refresh-3-workers",
        acked=len(result.acked),
        statuses=counts,
        refreshes=fake.oauth.refreshes,
        refresh_requests=fake.oauth.refresh_requests,
        answered_401=len(fake.calls("/api/v4/", status=401)),
    )
    assert (1, 1) == (fake.oauth.refreshes, fake.oauth.refresh_requests)
    assert [(2,)] == versions
    assert [] == fake.calls("/api/v4/", status=401)
    assert {} == lost_acknowledged(pg_db_url, result)
    assert set(counts) <= {"done", "ignored"}, counts
    assert FAKE_CLIENT_SECRET not in fleet.logs()


async def store_consented_tokens(settings: Settings, fake: FakeAmoState, expires_in: float) -> None:
    """What `amosync auth exchange` does, with the access expiry moved close."""
    endpoint = token_endpoint(settings)
    assert endpoint is not None
    assert settings.api_base_url is not None
    grant = await endpoint.exchange_code(fake.oauth.issue_code())
    grant = TokenGrant(
        grant.access_token, grant.refresh_token, datetime.now(UTC) + timedelta(seconds=expires_in)
    )
    database = Database.open(settings.database_url)
    try:
        await TokenStore(database, settings.api_base_url).save(grant)
    finally:
        await database.dispose()
