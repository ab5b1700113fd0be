"""`amosync events …`, `reconcile` and `backfill` as an operator runs them: real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert

from amosync.db.tables import webhook_events
from amosync.db.urls import sync_url
from amosync.testing import FakeAmoState
from tests.e2e.test_cli import AMOSYNC, env_for, fake_url, query

__all__ = ["fake_url"]  # the fixture, re-used from test_cli


def amosync(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AMOSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def add_failed_event(db_url: str, lead_id: int) -> int:
    now = datetime.now(UTC)
    engine = create_engine(sync_url(db_url))
    try:
        with engine.begin() as conn:
            result = conn.execute(
                insert(webhook_events)
                .values(
                    received_at=now,
                    source="webhook",
                    entity="leads",
                    action="update",
                    entity_id=lead_id,
                    payload={"id": str(lead_id), "name": "from the webhook"},
                    status="failed",
                    attempts=15,
                    last_error="GET /api/v4/leads: amoCRM answered 500 (boom)",
                    available_at=now,
                )
                .returning(webhook_events.c.id)
            )
            return int(result.scalar_one())
    finally:
        engine.dispose()


def test_failed_event_is_listed_shown_retried_and_processed(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """`events list --status failed`, `show`, `retry --failed`, then the worker stores it."""
    fake, base_url = fake_url
    lead = fake.add_lead(name="Kia Rio, retried")
    event_id = add_failed_event(db_url, lead["id"])
    env = env_for(db_url, base_url)

    listed = amosync(env, tmp_path, "events", "list", "--status", "failed", "--json")
    shown = amosync(env, tmp_path, "events", "show", str(event_id))
    retried = amosync(env, tmp_path, "events", "retry", "--failed")
    worker = amosync(env, tmp_path, "worker", "--once")

    assert [(event_id, "failed", 15)] == [
        (e["id"], e["status"], e["attempts"]) for e in json.loads(listed.stdout)
    ]
    assert 0 == shown.returncode
    assert "amoCRM answered 500 (boom)" in shown.stdout
    assert '"name": "from the webhook"' in shown.stdout
    assert (0, f"Queued again: 1 event(s) ({event_id}).") == (
        retried.returncode,
        retried.stdout.strip(),
    )
    assert 0 == worker.returncode, worker.stderr
    # Attempts were reset by the retry: this is the first one since.
    assert [("done", 1)] == query(db_url, "SELECT status, attempts FROM amocrm_webhook_events")
    assert [(lead["id"], "Kia Rio, retried")] == query(db_url, "SELECT id, name FROM amocrm_deals")


def test_reconcile_and_backfill_commands(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """`backfill --no-wait` loads history; `reconcile --since 2h` finds a later edit."""
    fake, base_url = fake_url
    old = fake.add_lead(name="last year", created_at=int(time.time()) - 365 * 86400)
    fake.add_contact(first_name="Анна", created_at=int(time.time()) - 365 * 86400)
    env = env_for(db_url, base_url)

    backfill = amosync(env, tmp_path, "backfill", "--no-wait")
    fake.update_lead(old["id"], name="edited today")
    reconcile = amosync(env, tmp_path, "reconcile", "--since", "2h")
    status = amosync(env, tmp_path, "status")

    assert 0 == backfill.returncode, backfill.stderr
    assert "Stored so far: contacts 1, companies 0, leads 1. API calls this run: 3." in (
        backfill.stdout
    )
    assert 0 == reconcile.returncode, reconcile.stderr
    assert "leads      1 fetched, 1 written" in reconcile.stdout
    assert "API calls: 4 (budget: 7 of 120 used in the last hour)" in reconcile.stdout
    assert [("edited today",)] == query(db_url, "SELECT name FROM amocrm_deals")
    assert "catch-up budget 7 of 120" in status.stdout
    assert "Last catch-up" in status.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["events", "retry"], 2, "say which events: --id N (repeatable) or --failed"),
        (["events", "retry", "--id", "1", "--failed"], 2, "say which events"),
        (["events", "retry", "--id", "424242"], 1, "Not failed, left alone: 424242"),
        (["events", "show", "424242"], 1, "no event with id 424242"),
        (["events", "list", "--status", "stuck"], 2, "unknown status 'stuck'"),
        (["events", "list", "--limit", "0"], 2, "--limit: must be between 1 and 500"),
        (["reconcile", "--since", "2x"], 2, "invalid duration '2x'"),
        (["backfill", "--entities", "deals"], 2, "unknown kind deals"),
    ],
)
def test_cli_errors_exit_non_zero_with_a_message(
    args: list[str], code: int, message: str, sqlite_template: Path, tmp_path: Path
) -> None:
    """Wrong usage exits 2, a missing event 1, each with a message on stderr."""
    shutil.copy(sqlite_template, tmp_path / "amosync.db")
    env = env_for(f"sqlite:///{tmp_path}/amosync.db", "http://127.0.0.1:9")

    result = amosync(env, tmp_path, *args)

    assert code == result.returncode
    assert message in result.stderr


def test_reconcile_without_an_account_or_database(tmp_path: Path) -> None:
    """No amoCRM account configured → 2; an unmigrated database → 1, saying to migrate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env["AMOSYNC_DATABASE_URL"] = f"sqlite:///{tmp_path}/empty.db"
    no_account = amosync(env, tmp_path, "reconcile")
    no_schema = amosync(env, tmp_path, "events", "list")

    assert (2, True) == (no_account.returncode, "no amoCRM account" in no_account.stderr)
    assert (1, True) == (no_schema.returncode, "amosync migrate" in no_schema.stderr)
