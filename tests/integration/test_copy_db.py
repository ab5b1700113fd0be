"""`amosync copy-db`: SQLite → PostgreSQL with data in every table, ids kept, all-or-nothing;
the source's worker heartbeats stay behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String, Table, insert, select

from amosync.db import migrate
from amosync.db.copy import ROWS_NOT_COPIED, CopyRefused, copy_database, copy_tables
from amosync.db.database import Database
from amosync.db.engine import create_sync_engine
from amosync.db.tables import webhook_events, workers
from amosync.db.types import UTCDateTime
from amosync.inbox import InboxStore
from amosync.worker.heartbeat import WorkerState, beat, recent_workers
from tests.fresh_pg import fresh_pg_database

EVENT_IDS = [3, 4, 17, *range(40, 62)]  # gaps, as deleted or rolled-back rows leave them
ROWS_PER_TABLE = len(EVENT_IDS)


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A new, empty, never-migrated PostgreSQL database, dropped afterwards."""
    with fresh_pg_database("amosync_copy") as url:
        yield url


def _value(table: Table, column: Any, n: int) -> Any:
    """A distinct, type-appropriate value for row `n`, with the awkward cases mixed in."""
    kind = column.type
    if isinstance(kind, UTCDateTime):  # across a DST change, with microseconds
        return datetime(2025, 3, 30, 1, 59, 59, 123456, tzinfo=UTC) + timedelta(hours=n)
    if column.nullable and n % 5 == 4:
        return None
    if isinstance(kind, JSON):
        return {"n": n, "имя": "Сделка «тест»", "nested": [1, 2.5, None, {"ok": True}]}
    if isinstance(kind, Boolean):
        return n % 2 == 0
    if isinstance(kind, BigInteger):
        return 9_000_000_000 + n
    if isinstance(kind, Integer):
        return n
    if isinstance(kind, Float):  # a fraction a binary float holds exactly
        return n + 0.25
    if isinstance(kind, String):  # Text is a String
        return f"{table.name[:8]}-{n}-ё"[: kind.length or 255]
    raise AssertionError(f"no test value for {table.name}.{column.name}: {kind!r}")


def _rows(table: Table) -> list[dict[str, Any]]:
    rows = []
    for n, event_id in enumerate(EVENT_IDS):
        row = {c.name: _value(table, c, n) for c in table.columns}
        for pk in table.primary_key.columns:
            row[pk.name] = event_id if pk.autoincrement is True else row[pk.name]
        rows.append(row)
    return rows


def _fill(url: str) -> None:
    engine = create_sync_engine(url)
    try:
        with engine.begin() as conn:
            for table in copy_tables():
                conn.execute(insert(table), _rows(table))
    finally:
        engine.dispose()


def _without_heartbeats(dump: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """A source dump as the target should look after a copy: no `amosync_workers` rows."""
    return {name: [] if name == workers.name else rows for name, rows in dump.items()}


def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            return {
                t.name: [
                    dict(r._mapping)
                    for r in conn.execute(select(t).order_by(*t.primary_key.columns))
                ]
                for t in copy_tables()
            }
    finally:
        engine.dispose()


@pytest.fixture
def source_url(tmp_path: Path) -> str:
    """A migrated SQLite database with rows in every amosync table."""
    url = f"sqlite:///{tmp_path / 'old' / 'amosync.db'}"
    migrate.upgrade(url)
    _fill(url)
    return url


async def test_sqlite_to_postgresql_copies_every_row_and_new_events_get_fresh_ids(
    source_url: str, fresh_pg_url: str
) -> None:
    """Every table arrives row for row with its ids (but heartbeats), the next event id follows
    the copy."""
    before = _dump(source_url)
    assert all(len(rows) == ROWS_PER_TABLE for rows in before.values())

    report = copy_database(source_url, fresh_pg_url, batch_size=7)

    assert {t.name: 0 if t.name == workers.name else ROWS_PER_TABLE for t in copy_tables()} == {
        t.name: t.rows for t in report.tables
    }
    assert _without_heartbeats(before) == _dump(fresh_pg_url)
    database = Database.open(fresh_pg_url)
    try:
        now = datetime.now(UTC)
        await InboxStore(database).append(
            [
                {
                    "received_at": now,
                    "source": "webhook",
                    "entity": "leads",
                    "action": "update",
                    "entity_id": 1,
                    "payload": {"id": "1"},
                    "status": "pending",
                    "attempts": 0,
                    "available_at": now,
                }
            ]
        )
        async with database.read() as conn:
            newest = (
                await conn.execute(
                    select(webhook_events.c.id).order_by(webhook_events.c.id.desc()).limit(1)
                )
            ).scalar_one()
    finally:
        await database.dispose()
    assert max(EVENT_IDS) + 1 == newest


def test_events_claimed_on_the_source_are_due_at_once_on_the_target(tmp_path: Path) -> None:
    """A lease held by a source worker is released: the event is pending and due right away."""
    source = f"sqlite:///{tmp_path / 'old.db'}"
    target = f"sqlite:///{tmp_path / 'new.db'}"
    migrate.upgrade(source)
    later = datetime.now(UTC) + timedelta(minutes=5)
    claimed = {**_rows(webhook_events)[0], "status": "pending", "locked_by": "old-host:1:abc"}
    claimed["available_at"] = later
    settled = {**_rows(webhook_events)[1], "status": "done", "locked_by": "old-host:1:abc"}
    settled["available_at"] = later
    engine = create_sync_engine(source)
    with engine.begin() as conn:
        conn.execute(insert(webhook_events), [claimed, settled])
    engine.dispose()

    report = copy_database(source, target)

    rows = {r["id"]: r for r in _dump(target)["amocrm_webhook_events"]}
    assert 1 == report.leases_released
    assert (None, "pending") == (rows[claimed["id"]]["locked_by"], rows[claimed["id"]]["status"])
    assert rows[claimed["id"]]["available_at"] <= datetime.now(UTC)
    assert ("old-host:1:abc", later) == (
        rows[settled["id"]]["locked_by"],
        rows[settled["id"]]["available_at"],
    )


async def test_source_workers_do_not_look_alive_on_the_target(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    """A worker beating on the source is not a recent worker of the target after the copy;
    the table's schema is there (the target's own workers beat into it) and the report says why."""
    source = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(source)
    source_database = Database.open(source)
    target_database = Database.open(fresh_pg_url)
    try:
        await beat(source_database, WorkerState())
        assert 1 == len(await recent_workers(source_database, timedelta(seconds=30)))

        report = copy_database(source, fresh_pg_url)

        assert [] == await recent_workers(target_database, timedelta(days=2))
        (row,) = [t for t in report.tables if t.name == workers.name]
        assert (0, ROWS_NOT_COPIED[workers.name]) == (row.rows, row.not_copied)
        await beat(target_database, WorkerState())
        assert 1 == len(await recent_workers(target_database, timedelta(seconds=30)))
    finally:
        await source_database.dispose()
        await target_database.dispose()


def test_non_empty_target_is_refused_and_left_untouched(source_url: str, tmp_path: Path) -> None:
    """A target holding data is refused without --force, and nothing in it changes."""
    target = f"sqlite:///{tmp_path / 'new.db'}"
    migrate.upgrade(target)
    engine = create_sync_engine(target)
    with engine.begin() as conn:
        conn.execute(insert(webhook_events), _rows(webhook_events)[:1])
    engine.dispose()
    before = _dump(target)

    with pytest.raises(CopyRefused, match="amocrm_webhook_events"):
        copy_database(source_url, target)

    assert before == _dump(target)


def test_force_replaces_what_the_target_held(source_url: str, tmp_path: Path) -> None:
    """With force the target's old rows are deleted and it ends up equal to the source."""
    target = f"sqlite:///{tmp_path / 'new.db'}"
    copy_database(source_url, target)
    copy_database(source_url, target, force=True)

    assert _without_heartbeats(_dump(source_url)) == _dump(target)


def test_source_behind_this_version_is_refused(tmp_path: Path, fresh_pg_url: str) -> None:
    """A source not migrated to this version's head is refused before the target is touched."""
    old = f"sqlite:///{tmp_path / 'old.db'}"
    config = migrate.alembic_config(old)
    command.upgrade(config, "0001")

    with pytest.raises(CopyRefused, match="schema 0001"):
        copy_database(old, fresh_pg_url)

    assert migrate.database_revision(fresh_pg_url) is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    return subprocess.run(
        [sys.executable, "-m", "amosync", "copy-db", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_copies_and_reports_counts(source_url: str, tmp_path: Path) -> None:
    """`amosync copy-db` exits 0 and names every table with its row count."""
    target = f"sqlite:///{tmp_path / 'new.db'}"

    done = _cli("--from", source_url, "--to", target)

    assert 0 == done.returncode, done.stderr
    for table in copy_tables():
        if table.name == workers.name:
            assert f"{table.name}: rows not copied (heartbeats of" in done.stdout
        else:
            assert f"{table.name}: {ROWS_PER_TABLE} rows" in done.stdout


def test_cli_exit_codes_for_same_database_and_non_empty_target(
    source_url: str, tmp_path: Path
) -> None:
    """Copying a database onto itself is a usage error (2); a non-empty target is refused (1)."""
    same = _cli("--from", source_url, "--to", source_url)
    taken = _cli(
        "--from", source_url, "--to", source_url.replace("old/amosync.db", "x/../old/amosync.db")
    )
    other = f"sqlite:///{tmp_path / 'new.db'}"
    _cli("--from", source_url, "--to", other)
    refused = _cli("--from", source_url, "--to", other)

    assert (2, 2, 1) == (same.returncode, taken.returncode, refused.returncode)
    assert "same database" in same.stderr
    assert "--force" in refused.stderr
