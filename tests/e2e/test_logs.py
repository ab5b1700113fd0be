"""Off a terminal the log is JSON lines a log system can ingest: one per worker batch and per
amoCRM call, with ids and timings, and never a secret."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy import insert

from amosync.db import migrate
from amosync.db.engine import create_sync_engine
from amosync.db.tables import webhook_events
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, run_fake_in_thread
from tests.integration.test_inbox import row


def test_worker_logs_json_lines_with_ids_and_timings_when_piped(tmp_path: Path) -> None:
    """`amosync worker --once` with stdout piped and the default format writes only JSON."""
    db_url = f"sqlite:///{tmp_path / 'amosync.db'}"
    migrate.upgrade(db_url)
    engine = create_sync_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(webhook_events), [row(501), row(502), row(501)])
    engine.dispose()
    fake = FakeAmoState()
    fake.add_lead(id=501, name="one")
    fake.add_lead(id=502, name="two")

    with run_fake_in_thread(fake) as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
        env.update(
            AMOSYNC_DATABASE_URL=db_url,
            AMOSYNC_AMOCRM_BASE_URL=base_url,
            AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
            AMOSYNC_WORKER_LINGER="0",
        )
        done = subprocess.run(
            [sys.executable, "-m", "amosync", "worker", "--once"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert 0 == done.returncode, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    batches = [r for r in lines if r.get("event") == "worker_batch"]
    calls = [r for r in lines if r.get("event") == "amocrm_request"]
    assert 1 == len(batches), lines
    batch = batches[0]
    assert (3, 2, 1) == (batch["events"], batch["entities"], batch["api_calls"])
    assert (1, 3) == (batch["first_event_id"], batch["last_event_id"])
    assert socket.gethostname()[:40] == batch["worker"].split(":")[0]
    assert isinstance(batch["ms"], int)
    assert {"ts", "level", "logger", "msg"} <= batch.keys()
    assert ["GET /api/v4/leads 200"] == [f"{c['method']} {c['path']} {c['status']}" for c in calls]
    assert all(isinstance(c["ms"], int | float) for c in calls)
    assert DEFAULT_TOKEN not in done.stdout + done.stderr
