"""`amosync backfill --history` as a person runs it: a real subprocess against the fake
amoCRM, on SQLite and PostgreSQL, in English and in Russian."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from amosync.db.engine import create_sync_engine
from amosync.db.tables import deal_stage_history
from amosync.testing import FakeAmoState, run_fake_in_thread
from tests.e2e.test_cli_l10n import env as env  # the fixture, over this module's fake_url
from tests.e2e.test_cli_l10n import run
from tests.english_words import english_words


@pytest.fixture
def fake() -> FakeAmoState:
    fake = FakeAmoState()
    for deal_id, days in ((1, 20), (2, 60), (3, 200)):
        fake.events.record(
            "lead_status_changed",
            "lead",
            deal_id,
            int(time.time()) - days * 86400,
            account_id=fake.account_id,
            value_before=[{"lead_status": {"id": 47000001, "pipeline_id": 7000001}}],
            value_after=[{"lead_status": {"id": 142, "pipeline_id": 7000001}}],
        )
    return fake


@pytest.fixture
def fake_url(fake: FakeAmoState) -> Iterator[str]:
    with run_fake_in_thread(fake) as url:
        yield url


def test_backfill_history_loads_the_default_90_days_then_further(
    env: dict[str, str],
    tmp_path: Path,
    db_url: str,
) -> None:
    first = run(["backfill", "--history"], env, tmp_path)
    longer = run(
        ["backfill", "--history", "--since", "365d"], {**env, "AMOSYNC_LANG": "ru"}, tmp_path
    )
    misuse = run(["backfill", "--since", "30d"], env, tmp_path)
    bad = run(["backfill", "--history", "--since", "soon"], env, tmp_path)

    assert 0 == first.returncode, first
    assert "Stage changes stored so far: 2 (90 days back)" in first.stdout, first.stdout
    assert "History backfill complete." in first.stdout
    assert 0 == longer.returncode, longer
    assert "Загрузка истории этапов завершена." in longer.stdout, longer.stdout
    assert [] == english_words(longer.stdout + longer.stderr), longer
    assert (2, "--since goes with --history") == (misuse.returncode, misuse.stderr.strip()[-27:])
    assert 2 == bad.returncode
    engine = create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            deals = conn.execute(select(deal_stage_history.c.deal_id)).scalars().all()
    finally:
        engine.dispose()
    assert [1, 2, 3] == sorted(deals)
