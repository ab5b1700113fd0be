"""The SQLite fast path of the group-commit writer stores rows exactly as InboxStore does."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amosync.db.database import Database
from amosync.errors import StorageUnavailable
from amosync.inbox import GroupCommitWriter, InboxStore
from amosync.inbox.sqlite_append import ROWS_PER_STATEMENT, SqliteAppender


def full_row(entity_id: int) -> dict[str, Any]:
    now = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)
    return {
        "received_at": now,
        "source": "webhook",
        "request_id": "471e2579-9a4a-4ce1-8af8-039aa98fd063",
        "entity": "leads",
        "action": "update",
        "entity_id": entity_id,
        "account_id": 31000001,
        "entity_updated_at": 1744532876,
        "payload": {"id": str(entity_id), "name": "Сделка", "custom_fields": [{"v": "1"}]},
        "status": "ignored",
        "attempts": 0,
        "last_error": None,
        "processed_at": now,
        "available_at": datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC),  # no microseconds
        "locked_by": None,
    }


async def stored(database: Database) -> list[dict[str, Any]]:
    """Rows as SQLite holds them (raw text, not parsed by the column types), without `id`:
    SQL compares the text, so the text itself must match."""
    async with database.read() as conn:
        result = await conn.exec_driver_sql("SELECT * FROM amocrm_webhook_events ORDER BY id")
        rows = result.mappings().all()
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


@pytest.fixture
async def sqlite_database(tmp_path: Path, sqlite_template: Path) -> Database:
    path = tmp_path / "amosync.db"
    path.write_bytes(sqlite_template.read_bytes())
    return Database.open(f"sqlite:///{path}")


async def test_fast_path_rows_equal_inbox_store_rows(sqlite_database: Database) -> None:
    """A row written by SqliteAppender reads back identical to one written by InboxStore."""
    appender = SqliteAppender(sqlite_database)
    try:
        await InboxStore(sqlite_database).append([full_row(1)])
        await appender.append([full_row(1)])
        # Keys left out get the column default (attempts) or NULL, as with InboxStore.
        short = {k: v for k, v in full_row(2).items() if k not in ("attempts", "locked_by")}
        await InboxStore(sqlite_database).append([short])
        await appender.append([short])
        via_store, via_appender, short_store, short_appender = await stored(sqlite_database)
    finally:
        await appender.aclose()
        await sqlite_database.dispose()

    assert via_store == via_appender
    assert short_store == short_appender


async def test_a_group_larger_than_one_statement_is_stored_whole(
    sqlite_database: Database,
) -> None:
    """150 rows (three INSERT statements in one transaction) read back as InboxStore's, in
    order; the same rows one by one give the same text."""
    rows = [full_row(i) for i in range(ROWS_PER_STATEMENT * 2 + 22)]
    appender = SqliteAppender(sqlite_database)
    try:
        await appender.append(rows)
        await InboxStore(sqlite_database).append(rows)
        got = await stored(sqlite_database)
    finally:
        await appender.aclose()
        await sqlite_database.dispose()

    assert got[: len(rows)] == got[len(rows) :]
    assert list(range(len(rows))) == [r["entity_id"] for r in got[: len(rows)]]


@pytest.mark.parametrize(
    ("size", "bad_at"), [(10, 5), (ROWS_PER_STATEMENT + 10, 5), (ROWS_PER_STATEMENT + 10, 69)]
)
async def test_a_failed_group_stores_none_of_its_rows(
    sqlite_database: Database, size: int, bad_at: int
) -> None:
    """A row SQLite refuses (NOT NULL) fails its whole commit, whether the commit is one
    statement or several and wherever the row is, and the next commit works."""
    rows = [full_row(i) for i in range(size)]
    rows[bad_at] = {**rows[bad_at], "entity": None}
    appender = SqliteAppender(sqlite_database)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            await appender.append(rows)
        await appender.append([full_row(1000)])
        got = await stored(sqlite_database)
    finally:
        await appender.aclose()
        await sqlite_database.dispose()

    assert [1000] == [r["entity_id"] for r in got]


async def test_writer_with_fast_path_commits_concurrent_writes(
    sqlite_database: Database,
) -> None:
    """200 concurrent writes through the fast path are all stored."""
    appender = SqliteAppender(sqlite_database)
    writer = GroupCommitWriter(InboxStore(sqlite_database), appender=appender)
    writer.start()
    try:
        await asyncio.gather(*(writer.write([full_row(i)]) for i in range(200)))
    finally:
        await writer.stop()
    ids = sorted(r["entity_id"] for r in await stored(sqlite_database))
    await sqlite_database.dispose()
    assert list(range(200)) == ids


async def test_fast_path_failure_is_storage_unavailable(tmp_path: Path) -> None:
    """A database the fast path cannot write answers StorageUnavailable, and the writer lives on."""
    broken = Database.open(f"sqlite:///{tmp_path}/never-migrated.db")  # no tables
    writer = GroupCommitWriter(InboxStore(broken), appender=SqliteAppender(broken))
    writer.start()
    try:
        with pytest.raises(StorageUnavailable):
            await writer.write([full_row(1)])
        with pytest.raises(StorageUnavailable):
            await writer.write([full_row(2)])
    finally:
        await writer.stop()
        await broken.dispose()


def hold_write_lock(database: Database) -> sqlite3.Connection:
    """Another process's writer, as far as SQLite can tell: a connection in BEGIN IMMEDIATE."""
    conn = sqlite3.connect(str(database.url.database), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_waiting_for_another_writer_does_not_block_the_loop(
    sqlite_database: Database,
) -> None:
    """While another connection holds the write lock, the commit waits with asyncio sleeps
    (the loop keeps serving), then lands as soon as the lock is free."""
    appender = SqliteAppender(sqlite_database)
    other = hold_write_lock(sqlite_database)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        append = asyncio.create_task(appender.append([full_row(1)]))
        await asyncio.sleep(0.3)
        assert not append.done()
        other.execute("COMMIT")
        await asyncio.wait_for(append, 2)
    finally:
        ticking.cancel()
        other.close()
        await appender.aclose()
    rows = await stored(sqlite_database)
    await sqlite_database.dispose()
    assert ticks >= 30  # ~60 in 0.3 s; a blocked loop would have ticked about once
    assert [1] == [r["entity_id"] for r in rows]


async def test_lock_held_past_the_timeout_is_storage_unavailable(
    sqlite_database: Database,
) -> None:
    """A lock nobody releases ends in StorageUnavailable (503) after the lock timeout, for a
    lone request and for a large batch alike, and nothing is half-written."""
    appender = SqliteAppender(sqlite_database, lock_timeout=0.2)
    writer = GroupCommitWriter(InboxStore(sqlite_database), appender=appender)
    writer.start()
    other = hold_write_lock(sqlite_database)
    try:
        with pytest.raises(StorageUnavailable, match="locked"):
            await writer.write([full_row(1)])
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await appender.append([full_row(n) for n in range(10)])
    finally:
        other.execute("ROLLBACK")
        other.close()
        await writer.stop()
    rows = await stored(sqlite_database)
    await sqlite_database.dispose()
    assert [] == rows


async def test_appends_leave_checkpoints_to_the_engines_checkpointer(
    sqlite_database: Database,
) -> None:
    """The appender's connection never checkpoints inside a commit (db/wal_checkpoint.py);
    its commits wake the database's checkpointer, which copies the WAL into the database file."""
    checkpointer = sqlite_database.checkpointer
    assert checkpointer is not None
    appender = SqliteAppender(sqlite_database)
    try:
        for n in range(200):
            await appender.append([full_row(n)])
        assert checkpointer.running
        connection = appender._conn
        assert connection is not None
        assert connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        for _ in range(200):
            if checkpointer.checkpoints:
                break
            await asyncio.sleep(0.05)
        assert checkpointer.checkpoints >= 1
    finally:
        await appender.aclose()
        await sqlite_database.dispose()
    database = Path(str(sqlite_database.url.database))
    with sqlite3.connect(database) as conn:
        assert 200 == conn.execute("SELECT count(*) FROM amocrm_webhook_events").fetchone()[0]
