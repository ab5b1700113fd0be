"""`amosync verify` as an operator runs it (real processes): output, repairs, exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from amosync.db.urls import sync_url
from amosync.testing import FakeAmoState, run_fake_in_thread
from tests.e2e.test_cli import env_for, query
from tests.e2e.test_cli_events import amosync


@pytest.fixture
def fake_url() -> Iterator[tuple[FakeAmoState, str]]:
    # Behind real time, so an edit right after the backfill never stamps a future second.
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)
    with run_fake_in_thread(fake) as url:
        yield fake, url


def execute(db_url: str, *statements: str) -> None:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def test_verify_repairs_and_reports(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """`verify --all --json` finds an edit and a deletion and repairs both; `--sample` and
    `status` report it."""
    fake, base_url = fake_url
    day_ago = int(time.time()) - 86400
    edited, deleted, kept = (fake.add_lead(name=n, created_at=day_ago) for n in "abc")
    person = fake.add_contact(first_name="Анна", created_at=day_ago)
    env = env_for(db_url, base_url)
    assert 0 == amosync(env, tmp_path, "backfill", "--no-wait").returncode
    fake.update_lead(edited["id"], name="edited, no webhook", price=700)
    fake.delete_lead(deleted["id"])

    full = amosync(env, tmp_path, "verify", "--all", "--json")
    sample = amosync(env, tmp_path, "verify", "--sample", "2", "--entities", "leads")
    status = amosync(env, tmp_path, "status")
    status_json = amosync(env, tmp_path, "status", "--json")

    assert 0 == full.returncode, full.stderr
    result = json.loads(full.stdout)
    counts = ("checked", "diverged", "repaired", "unrepaired")
    assert (4, 2, 2, 0) == tuple(result[k] for k in counts)
    # leads: the batch and the deleted id alone; contacts: one batch.
    assert 3 == result["calls"]
    assert {edited["id"], deleted["id"]} == {e["id"] for e in result["examples"]}
    names = {i: (n, p) for i, n, p in query(db_url, "SELECT id, name, price FROM amocrm_deals")}
    assert ("edited, no webhook", 700) == names[edited["id"]]
    flags: dict[int, bool] = dict(query(db_url, "SELECT id, is_deleted FROM amocrm_deals"))
    assert (True, False, False) == (
        bool(flags[deleted["id"]]),
        bool(flags[edited["id"]]),
        bool(flags[kept["id"]]),
    )
    assert person["id"] in dict(query(db_url, "SELECT id, name FROM amocrm_contacts"))
    assert 0 == sample.returncode, sample.stderr
    assert "checked 2, diverged 0, repaired 0, not repaired 0" in sample.stdout
    assert "(1 API calls)" in sample.stdout
    assert "Last verification" in status.stdout
    assert "2 checked, 0 diverged, 0 repaired" in status.stdout
    assert "leads 3 of 3" in status.stdout
    data = json.loads(status_json.stdout)
    assert 2 == data["last_verify"]["checked"]
    assert {"stored": 3, "verified": 3} == {
        k: data["verify_coverage"]["leads"][k] for k in ("stored", "verified")
    }
    assert 10 == data["verify_calls_per_hour"]
    purposes: dict[str, int] = dict(
        query(db_url, "SELECT purpose, count(*) FROM amocrm_api_requests GROUP BY 1")
    )
    assert 4 == purposes["verify-cli"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "5", "--all"], "not both"),
        (["--sample", "0"], "--sample: give a number from 1"),
        (["--entities", "tasks"], "unknown kind tasks"),
    ],
)
def test_usage_errors_exit_2(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path, args: list[str], message: str
) -> None:
    _, base_url = fake_url
    done = amosync(env_for(db_url, base_url), tmp_path, "verify", *args)

    assert 2 == done.returncode
    assert message in done.stderr


def test_divergence_that_cannot_be_repaired_exits_1(
    db_url: str, fake_url: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    """A database trigger undoes every write of the name (a stand-in for a broken writer):
    verification repairs, reads back, sees the difference remain, and says so."""
    fake, base_url = fake_url
    fake.add_lead(name="the truth", created_at=int(time.time()) - 86400)
    env = env_for(db_url, base_url)
    assert 0 == amosync(env, tmp_path, "backfill", "--no-wait").returncode
    postgres = db_url.startswith("postgresql")
    if postgres:
        execute(
            db_url,
            "CREATE FUNCTION stuck_name() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN NEW.name := 'stuck'; RETURN NEW; END $$",
            "CREATE TRIGGER stuck_name BEFORE UPDATE ON amocrm_deals "
            "FOR EACH ROW EXECUTE FUNCTION stuck_name()",
            "UPDATE amocrm_deals SET name = 'x'",
        )
    else:
        execute(
            db_url,
            "UPDATE amocrm_deals SET name = 'stuck'",
            "CREATE TRIGGER stuck_name AFTER UPDATE ON amocrm_deals WHEN NEW.name != 'stuck' "
            "BEGIN UPDATE amocrm_deals SET name = 'stuck' WHERE id = NEW.id; END",
        )
    try:
        done = amosync(env, tmp_path, "verify", "--all")
        last = query(db_url, "SELECT value FROM amosync_state WHERE key = 'verify.last'")
    finally:
        if postgres:
            execute(
                db_url,
                "DROP TRIGGER stuck_name ON amocrm_deals",
                "DROP FUNCTION stuck_name()",
            )

    assert 1 == done.returncode, done.stdout + done.stderr
    assert "1 divergence(s) could not be repaired" in done.stderr
    assert "not repaired 1" in done.stdout
    value = last[0][0]
    value = json.loads(value) if isinstance(value, str) else value
    assert (1, 0, 1) == (value["diverged"], value["repaired"], value["unrepaired"])
