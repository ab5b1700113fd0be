"""SQLite write transactions run whole on the writer thread (db/thread_transactions.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, select, text

from amosync.db.database import Database
from amosync.db.tables import sync_state
from tests.integration.test_wal_checkpoint import BIG_ROW, rows_in_main_file, wait_until


@pytest.fixture
async def database(tmp_path: Path) -> Database:
    database = Database.open(f"sqlite:///{tmp_path / 'threads.db'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
    return database


def values(database: Database) -> list[str]:
    with sqlite3.connect(str(database.url.database)) as conn:
        return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]


async def test_a_transaction_runs_whole_on_another_thread_and_commits(
    database: Database,
) -> None:

    def work(conn: Connection) -> tuple[int, bool]:
        conn.execute(text("INSERT INTO t VALUES ('a'), ('b')"))
        return threading.get_ident(), conn.in_transaction()

    try:
        ident, in_transaction = await database.write_sync(work)
        assert ident != threading.get_ident()
        assert in_transaction
        assert ["a", "b"] == values(database)
    finally:
        await database.dispose()


async def test_an_exception_rolls_back_and_comes_back(database: Database) -> None:

    def fails_halfway(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t VALUES ('lost')"))
        raise LookupError("halfway")

    try:
        with pytest.raises(LookupError, match="halfway"):
            await database.write_sync(fails_halfway)
        await database.write_sync(lambda conn: conn.execute(text("INSERT INTO t VALUES ('kept')")))
        assert ["kept"] == values(database)
    finally:
        await database.dispose()


async def test_it_takes_the_write_lock_up_front(database: Database) -> None:
    """BEGIN IMMEDIATE, as the service engine: another writer waits for the whole
    transaction, not just for its first write."""
    inside, release = threading.Event(), threading.Event()

    def hold(conn: Connection) -> None:
        inside.set()
        release.wait(5)  # no statement yet: a deferred BEGIN would hold no lock here

    other = sqlite3.connect(str(database.url.database), isolation_level=None, timeout=0)
    try:
        held = asyncio.create_task(database.write_sync(hold))
        assert await asyncio.to_thread(inside.wait, 5)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        release.set()
        await held
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        release.set()
        other.close()
        await database.dispose()


async def test_checkpoints_are_left_to_the_databases_checkpointer(
    database: Database, tmp_path: Path
) -> None:
    checkpointer = database.checkpointer
    assert checkpointer is not None
    done = checkpointer.checkpoints
    try:
        setting = await database.write_sync(
            lambda conn: conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one(),
        )
        assert 0 == setting
        await database.write_sync(
            lambda conn: conn.execute(text("INSERT INTO t VALUES (:v)"), [{"v": BIG_ROW}] * 1500),
        )
        # 1,500 pages committed: SQLite would have checkpointed inside that commit. Waiting
        # for the rows rather than for a checkpoint: the one that ran first may be the
        # CREATE TABLE's (done was read before it ran), ahead of this commit. And the
        # checkpointer is woken before a commit lands (SQLAlchemy's commit event), so one
        # woken by this commit may run before the commit ends when it takes longer than the
        # interval; the empty transaction wakes it again once the rows are committed.
        await database.write_sync(lambda conn: None)
        # Both together: the checkpointer counts a checkpoint just after its copy ends.
        main_file = Path(str(database.url.database))
        assert await asyncio.to_thread(
            wait_until,
            lambda: (
                rows_in_main_file(main_file, tmp_path) == 1500 and checkpointer.checkpoints > done
            ),
        )
    finally:
        await database.dispose()


async def test_disposing_the_database_ends_its_thread(database: Database) -> None:
    await database.write_sync(lambda conn: conn.execute(text("INSERT INTO t VALUES ('x')")))
    names = {t.name for t in threading.enumerate()}
    assert any(n.startswith("sqlite-writer") for n in names)

    await database.dispose()

    assert not any(t.name.startswith("sqlite-writer") for t in threading.enumerate())


async def test_write_sync_writes_in_one_go_on_either_database(db_url: str) -> None:
    """`Database.write_sync` (the rate limiter's and the call log's way to write): on SQLite
    the work runs on the writer thread, on PostgreSQL through the async engine; either way
    one transaction that commits, or rolls back when the work raises."""
    database = Database.open(db_url)
    key = f"test-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)

    def write(value: int, conn: Connection) -> int:
        conn.execute(
            sync_state.insert().values(key=f"{key}-{value}", value={"v": value}, updated_at=now)
        )
        if value < 0:
            raise LookupError("refused")
        return threading.get_ident()

    try:
        ident = await database.write_sync(partial(write, 1))
        with pytest.raises(LookupError, match="refused"):
            await database.write_sync(partial(write, -1))
        async with database.read() as conn:
            keys = (
                await conn.scalars(select(sync_state.c.key).where(sync_state.c.key.startswith(key)))
            ).all()
        assert [f"{key}-1"] == keys
        if database.dialect == "sqlite":
            assert ident == await database.turns.run(threading.get_ident)
        else:
            assert ident == threading.get_ident()  # no writer thread on PostgreSQL
    finally:
        async with database.write() as conn:
            await conn.execute(delete(sync_state).where(sync_state.c.key.startswith(key)))
        await database.dispose()
