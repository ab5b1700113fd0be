"""WAL checkpoints run on the checkpointer's thread, never inside a service commit."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from amosync.db.database import Database
from amosync.db.engine import connect_sqlite
from amosync.db.wal_checkpoint import WalCheckpointer

BIG_ROW = "x" * 3000  # most of a 4 KB page: a page per row


def rows_in_main_file(database: Path, tmp_path: Path) -> int:
    """Rows of table `t` in the database file alone: what checkpoints copied there so far.
    (Opened without its -wal file, the copy sees nothing that is only in the WAL.)"""
    copy = tmp_path / f"main-only-{time.monotonic_ns()}.db"
    shutil.copyfile(database, copy)
    try:
        with sqlite3.connect(copy) as conn:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()
            return int(conn.execute("SELECT count(*) FROM t").fetchone()[0]) if tables[0] else 0
    except sqlite3.DatabaseError:
        return -1  # copied in the middle of a checkpoint's writes: a torn copy


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def writer(tmp_path: Path) -> sqlite3.Connection:
    """A connection that, like the service's, leaves checkpoints to the checkpointer."""
    conn = connect_sqlite(str(tmp_path / "db.sqlite"))
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table itself is in the main file
    return conn


def insert(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t VALUES (?)", [(BIG_ROW,)] * n)
    conn.execute("COMMIT")


def test_writes_reach_the_main_file_only_through_the_checkpointer(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    database = tmp_path / "db.sqlite"
    checkpointer = WalCheckpointer(str(database), connect_sqlite, interval=0.05)
    try:
        insert(writer, 1500)  # 1,500 pages: SQLite's default would checkpoint in this commit
        assert 0 == rows_in_main_file(database, tmp_path)  # still only in the WAL
        checkpointer.written()
        assert wait_until(lambda: checkpointer.checkpoints == 1)
        assert rows_in_main_file(database, tmp_path) == 1500
    finally:
        checkpointer.close()


def test_one_checkpoint_per_interval_however_many_commits(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    database = tmp_path / "db.sqlite"
    checkpointer = WalCheckpointer(str(database), connect_sqlite, interval=30)
    try:
        for _ in range(50):
            insert(writer, 10)
            checkpointer.written()
        assert checkpointer.running
        time.sleep(0.2)
        assert checkpointer.checkpoints == 0  # waiting out its interval
        assert 0 == rows_in_main_file(database, tmp_path)
    finally:
        started = time.monotonic()
        checkpointer.close()  # does not wait out the interval, and copies what was written
    assert time.monotonic() - started < 5
    assert checkpointer.checkpoints == 1
    assert 500 == rows_in_main_file(database, tmp_path)
    assert not checkpointer.running


def test_the_thread_ends_when_idle_and_the_next_write_starts_another(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    database = tmp_path / "db.sqlite"
    checkpointer = WalCheckpointer(str(database), connect_sqlite, interval=0.01, idle_exit=0.2)
    try:
        insert(writer, 5)
        checkpointer.written()
        assert wait_until(lambda: not checkpointer.running)  # ended after 0.2 s without writes
        assert 5 == rows_in_main_file(database, tmp_path)
        insert(writer, 7)
        checkpointer.written()
        assert checkpointer.running
        assert wait_until(lambda: rows_in_main_file(database, tmp_path) == 12)
    finally:
        checkpointer.close()


def test_a_database_it_cannot_open_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "no-such-dir" / "db.sqlite"
    checkpointer = WalCheckpointer(str(missing), connect_sqlite, interval=0.01)
    with caplog.at_level(logging.WARNING, logger="amosync.db.wal_checkpoint"):
        checkpointer.written()
        assert wait_until(lambda: "wal_checkpoint_failed" in caplog.text)
        checkpointer.close()
    assert checkpointer.checkpoints == 0
    record = next(r for r in caplog.records if r.getMessage() == "wal_checkpoint_failed")
    assert record.__dict__["path"] == str(missing)
    assert "unable to open" in record.__dict__["error"]


async def test_service_engine_commits_leave_checkpoints_to_its_checkpointer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "service.db"
    database = Database.open(f"sqlite:///{path}")
    checkpointer = database.checkpointer
    assert checkpointer is not None
    try:
        async with database.write() as conn:  # a connection of the service engine
            setting = (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
        assert setting == 0
        async with database.write() as conn:
            await conn.execute(text("CREATE TABLE t (v TEXT)"))
        async with database.write() as conn:
            await conn.execute(text("INSERT INTO t VALUES (:v)"), [{"v": BIG_ROW}] * 1500)
        assert checkpointer.running
        # The checkpointer copies it within its interval (0.25 s), not the commit.
        assert await asyncio.to_thread(wait_until, lambda: checkpointer.checkpoints >= 1)
        assert rows_in_main_file(path, tmp_path) == 1500
    finally:
        await database.dispose()
    assert not checkpointer.running  # dispose stops the thread


async def test_postgresql_engines_have_no_checkpointer(pg_url: str) -> None:
    database = Database.open(pg_url)
    assert database.checkpointer is None
    await database.dispose()
