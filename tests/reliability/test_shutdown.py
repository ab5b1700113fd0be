"""Scenario 7, graceful shutdown: SIGTERM while a worker holds claimed events in the middle
of slow amoCRM calls. It exits promptly and no event stays leased."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from amosync.db.types import aware
from amosync.settings import Settings
from amosync.testing import FakeAmoState
from tests.reliability.harness import (
    FORM,
    SECRET,
    Fleet,
    lead_body,
    query,
    report,
    seed_leads,
    status_counts,
    wait_drained,
)


def leased(db_url: str, claimed_after: float | None = None) -> list[tuple[int, str]]:
    """Pending events still hidden from other workers by a lease.

    `claimed_after` (a `time.time()`) keeps only leases taken after that moment: a lease
    ends the default lease length after its claim.
    """
    rows = query(
        db_url,
        "SELECT id, locked_by, available_at FROM amocrm_webhook_events "
        "WHERE status = 'pending' AND locked_by IS NOT NULL",
    )
    now = datetime.now(UTC)
    floor = now
    if claimed_after is not None:
        lease = timedelta(seconds=Settings.model_fields["worker_lease_seconds"].default)
        floor = max(now, datetime.fromtimestamp(claimed_after, UTC) + lease)
    until = [(int(r[0]), str(r[1]), aware(r[2])) for r in rows]
    return [(id_, by) for id_, by, at in until if at is not None and at > floor]


@pytest.mark.slow
def wait_leased(db_url: str, timeout: float = 30.0) -> list[tuple[int, str]]:
    """The first leases seen (a batch claimed), as seen: asked again, a fast batch may have
    ended meanwhile. `timeout` only bounds a hang: a loaded machine starts processes slowly."""
    deadline = time.monotonic() + timeout
    while not (held := leased(db_url)):
        assert time.monotonic() < deadline, f"no batch claimed within {timeout} s"
        time.sleep(0.05)
    return held


@pytest.mark.parametrize(
    ("db_url", "command"),
    [("sqlite", "worker"), ("postgresql", "serve")],
    indirect=["db_url"],
)
def test_sigterm_releases_or_finishes_claimed_events(
    db_url: str,
    fake_on_port: tuple[FakeAmoState, str],
    tmp_path: Path,
    command: str,
) -> None:
    """SIGTERM during 2-second amoCRM calls: exit within 15 s, nothing left leased, and a
    new worker then finishes every event."""
    fake, fake_url = fake_on_port
    lead_ids = seed_leads(fake, 45_000_001, 15)
    fake.latency_seconds = 2.0
    env = {"AMOSYNC_WORKER_BATCH_SIZE": "5", "AMOSYNC_WORKER_LINGER": "0"}
    fleet = Fleet(db_url, fake_url, tmp_path, env)
    try:
        web = fleet.web(worker=command == "serve")
        busy = web if command == "serve" else fleet.worker()
        with httpx.Client(base_url=web.url, timeout=5) as client:
            for lead_id in lead_ids:
                body = lead_body("webhook_leads_update_2025_unirock.form", lead_id)
                assert (
                    200 == client.post(f"/amocrm/{SECRET}", content=body, headers=FORM).status_code
                )
        claimed = len(wait_leased(db_url))
        started = time.monotonic()
        code = busy.terminate(timeout=15)
        stop_seconds = time.monotonic() - started
        left_leased = leased(db_url)
        fake.latency_seconds = 0.0
        if command == "serve":
            web.start()
        else:
            busy.start()
        wait_drained(db_url, timeout=30)
    finally:
        fleet.stop()

    report(
        f"shutdown-{command}-{db_url.split(':', 1)[0]}",
        claimed_at_sigterm=claimed,
        stop_seconds=round(stop_seconds, 1),
        left_leased=len(left_leased),
    )
    assert claimed > 0
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert code in ({0} if command == "worker" else {0, -15}), code
    assert stop_seconds < 15
    assert [] == left_leased
    assert {"done": len(lead_ids)} == status_counts(db_url)
