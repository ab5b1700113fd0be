"""Scenario 1, crash under load: `kill -9` the worker and the web process while webhooks
arrive; after restarting and draining, every acknowledged event is stored and applied."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from amosync.testing import FakeAmoState
from tests.reliability.harness import (
    SECRET,
    Fleet,
    LoadGenerator,
    deal_mismatches,
    densest_second,
    lost_acknowledged,
    report,
    seed_leads,
    status_counts,
    wait_drained,
)

LOAD_SECONDS = 7.0


@pytest.mark.slow
def test_kill_9_worker_and_web_under_load_loses_nothing(
    db_url: str, fake_on_port: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """Every event answered 200 survives kill -9 of both processes and ends done or ignored."""
    fake, fake_url = fake_on_port
    lead_ids = seed_leads(fake, 40_000_001, 60)
    # A tuned setting: the shortest lease allowed (the default is test_crash_resume.py's).
    fleet = Fleet(db_url, fake_url, tmp_path, {"AMOSYNC_WORKER_LEASE_SECONDS": "10"})
    chaos = random.Random()
    kills: list[str] = []
    try:
        web = fleet.web()
        worker = fleet.worker()
        load = LoadGenerator([web.url], lead_ids, rate=60, change_every=8, fake=fake)
        load.start()
        started = time.monotonic()
        for proc in (worker, web, worker):
            time.sleep(chaos.uniform(0.8, 2.5))
            proc.kill9()
            kills.append(proc.name)
            time.sleep(chaos.uniform(0.0, 0.5))
            proc.start()
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
        result = load.stop()
        drain = wait_drained(db_url, timeout=60)
    finally:
        fleet.stop()

    dialect = db_url.split(":", 1)[0]
    counts = status_counts(db_url)
    most_per_second = fake.max_calls_in_any_window(1.0, "/api/v4/")
    report(
        f"crash-{dialect}",
        posted=result.posted,
        acked=len(result.acked),
        acked_rows=result.acked_rows,
        refused=result.refused,
        gave_up=result.gave_up,
        statuses=counts,
        kills=kills,
        drain_seconds=round(drain, 1),
        api_calls=len(fake.calls("/api/v4/")),
        max_calls_in_any_second=most_per_second,
    )
    assert {} == lost_acknowledged(db_url, result)
    assert 0 == result.gave_up
    assert set(counts) <= {"done", "ignored"}, counts
    assert [] == deal_mismatches(db_url, fake, result.lead_ids)
    assert most_per_second <= 7, str(densest_second(fake))
    assert result.acked_rows <= sum(counts.values())
    assert len(result.acked) > 50, result.statuses  # the load really ran
    assert SECRET not in fleet.logs()
