"""Commands that used to wait forever or leak a traceback: `worker --once` when amoCRM
refuses us, `status` showing the shared pause."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, delete, insert

from amosync.amocrm.shared_limit import DEFAULT_KEY
from amosync.db.tables import sync_state, webhook_events
from amosync.db.urls import sync_url
from amosync.testing import FakeAmoState
from amosync.worker.paused import PAUSED_EXIT_CODE
from tests.e2e.test_cli import env_for, fake_url, query
from tests.e2e.test_cli_events import amosync

__all__ = ["fake_url"]


def add_event(db_url: str, status: str, received_at: datetime, lead_id: int = 1) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(webhook_events).values(
                    received_at=received_at,
                    source="webhook",
                    entity="leads",
                    action="update",
                    entity_id=lead_id,
                    payload={"id": str(lead_id)},
                    status=status,
                    attempts=0,
                    processed_at=None if status == "pending" else received_at,
                    available_at=received_at,
                )
            )
    finally:
        engine.dispose()


def store_pause(db_url: str, seconds: float) -> None:
    engine = create_engine(sync_url(db_url))
    value = {"slots": [], "paused_until": time.time() + seconds, "blocked_until": 0.0}
    try:
        with engine.begin() as conn:
            conn.execute(delete(sync_state).where(sync_state.c.key == DEFAULT_KEY))
            conn.execute(
                insert(sync_state).values(
                    key=DEFAULT_KEY, value=value, updated_at=datetime.now(UTC)
                )
            )
    finally:
        engine.dispose()


def test_worker_once_exits_with_one_line_when_amocrm_refuses_the_token(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """No traceback of a private exception: one line, exit 3, the event still pending."""
    fake, base_url = fake_url
    fake.revoke_tokens()
    add_event(db_url, "pending", datetime.now(UTC))

    result = amosync(env_for(db_url, base_url), tmp_path, "worker", "--once")

    assert PAUSED_EXIT_CODE == result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "_Paused" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("amosync:")]
    assert line.startswith("amosync: worker paused (reauth required): ")
    assert "run again" in line
    assert [("pending",)] == query(db_url, "SELECT status FROM amocrm_webhook_events")


def test_status_shows_the_shared_pause_with_its_end(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """An absurd stored pause shows as what it is treated as: at most 2 minutes."""
    _, base_url = fake_url
    env = env_for(db_url, base_url)
    plain = amosync(env, tmp_path, "status")
    assert 0 == plain.returncode, plain.stderr
    assert "amoCRM calls" in plain.stdout
    assert "not paused" in plain.stdout

    store_pause(db_url, 1e9)
    text = amosync(env, tmp_path, "status")
    as_json = amosync(env, tmp_path, "status", "--json")

    [row] = [x for x in text.stdout.splitlines() if x.startswith("amoCRM calls")]
    assert "paused after a 429 until " in row
    pause = json.loads(as_json.stdout)["api_pause"]
    assert "rate_limited" == pause["kind"]
    assert 60 < pause["seconds_left"] <= 120
    until = datetime.fromisoformat(pause["until"])
    assert (until - datetime.now(UTC)).total_seconds() <= 121


def test_events_prune_on_demand(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """`events prune --dry-run` counts, `events prune` deletes; failed events stay."""
    _, base_url = fake_url
    env = env_for(db_url, base_url)
    old = datetime.now(UTC) - timedelta(days=45)
    for status in ("done", "ignored", "failed"):
        add_event(db_url, status, old)
    add_event(db_url, "done", datetime.now(UTC))

    dry = amosync(env, tmp_path, "events", "prune", "--dry-run")
    assert 0 == dry.returncode, dry.stderr
    assert dry.stdout.startswith("Would delete 2 done/ignored event(s) older than 30 days")
    assert 4 == len(query(db_url, "SELECT id FROM amocrm_webhook_events"))

    done = amosync(env, tmp_path, "events", "prune")
    assert 0 == done.returncode, done.stderr
    assert done.stdout.startswith("Deleted 2 done/ignored event(s)")
    assert [("done",), ("failed",)] == query(
        db_url, "SELECT status FROM amocrm_webhook_events ORDER BY status"
    )
