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
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.db.engine import create_service_engine, wal_checkpointer
from amosync.db.tables import sync_state
from amosync.db.thread_transactions import run_transaction, thread_transactions
from amosync.db.turns import turns_of
from tests.integration.test_wal_checkpoint import BIG_ROW, rows_in_main_file, wait_until


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    engine = create_service_engine(f"sqlite:///{tmp_path / 'threads.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
    return engine


def values(engine: AsyncEngine) -> list[str]:
    with sqlite3.connect(str(engine.url.database)) as conn:
        return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]


async def test_a_transaction_runs_whole_on_another_thread_and_commits(
    engine: AsyncEngine,
) -> None:
    threads = thread_transactions(engine)
    assert threads is not None
    assert threads is thread_transactions(engine)  # one per engine

    def work(conn: Connection) -> tuple[int, bool]:
        conn.execute(text("INSERT INTO t VALUES ('a'), ('b')"))
        return threading.get_ident(), conn.in_transaction()

    try:
        ident, in_transaction = await turns_of(engine).run(threads.transaction, work)
        assert ident != threading.get_ident()
        assert in_transaction
        assert ["a", "b"] == values(engine)
    finally:
        await engine.dispose()


async def test_an_exception_rolls_back_and_comes_back(engine: AsyncEngine) -> None:
    threads = thread_transactions(engine)
    assert threads is not None

    def fails_halfway(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t VALUES ('lost')"))
        raise LookupError("halfway")

    try:
        with pytest.raises(LookupError, match="halfway"):
            await turns_of(engine).run(threads.transaction, fails_halfway)
        await turns_of(engine).run(
            threads.transaction, lambda conn: conn.execute(text("INSERT INTO t VALUES ('kept')"))
        )
        assert ["kept"] == values(engine)
    finally:
        await engine.dispose()


async def test_it_takes_the_write_lock_up_front(engine: AsyncEngine) -> None:
    """BEGIN IMMEDIATE, as the service engine: another writer waits for the whole
    transaction, not just for its first write."""
    threads = thread_transactions(engine)
    assert threads is not None
    inside, release = threading.Event(), threading.Event()

    def hold(conn: Connection) -> None:
        inside.set()
        release.wait(5)  # no statement yet: a deferred BEGIN would hold no lock here

    other = sqlite3.connect(str(engine.url.database), isolation_level=None, timeout=0)
    try:
        held = asyncio.create_task(turns_of(engine).run(threads.transaction, hold))
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
        await engine.dispose()


async def test_checkpoints_are_left_to_the_engines_checkpointer(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    threads = thread_transactions(engine)
    checkpointer = wal_checkpointer(engine)
    assert threads is not None
    assert checkpointer is not None
    done = checkpointer.checkpoints
    try:
        setting = await turns_of(engine).run(
            threads.transaction,
            lambda conn: conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one(),
        )
        assert 0 == setting
        await turns_of(engine).run(
            threads.transaction,
            lambda conn: conn.execute(text("INSERT INTO t VALUES (:v)"), [{"v": BIG_ROW}] * 1500),
        )
        # 1,500 pages committed: SQLite would have checkpointed inside that commit. Waiting
        # for the rows rather than for a checkpoint: the one that ran first may be the
        # CREATE TABLE's (done was read before it ran), ahead of this commit. And the
        # checkpointer is woken before a commit lands (SQLAlchemy's commit event), so one
        # woken by this commit may run before the commit ends when it takes longer than the
        # interval; the empty transaction wakes it again once the rows are committed.
        await turns_of(engine).run(threads.transaction, lambda conn: None)
        # Both together: the checkpointer counts a checkpoint just after its copy ends.
        main_file = Path(str(engine.url.database))
        assert await asyncio.to_thread(
            wait_until,
            lambda: (
                rows_in_main_file(main_file, tmp_path) == 1500 and checkpointer.checkpoints > done
            ),
        )
    finally:
        await engine.dispose()


async def test_disposing_the_engine_ends_its_thread(engine: AsyncEngine) -> None:
    threads = thread_transactions(engine)
    assert threads is not None
    await turns_of(engine).run(
        threads.transaction, lambda conn: conn.execute(text("INSERT INTO t VALUES ('x')"))
    )
    names = {t.name for t in threading.enumerate()}
    assert any(n.startswith("sqlite-writer") for n in names)

    await engine.dispose()

    assert not any(t.name.startswith("sqlite-writer") for t in threading.enumerate())
    assert thread_transactions(engine) is not threads  # a reused engine gets new ones
    await engine.dispose()


async def test_postgresql_engines_have_none(pg_url: str) -> None:
    engine = create_service_engine(pg_url)
    assert thread_transactions(engine) is None
    await engine.dispose()


async def test_run_transaction_writes_in_one_go_on_either_database(db_url: str) -> None:
    """`run_transaction` (the rate limiter's and the call log's way to write): on SQLite the
    work runs on the writer thread, on PostgreSQL through the async engine; either way one
    transaction that commits, or rolls back when the work raises."""
    engine = create_service_engine(db_url)
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
        ident = await run_transaction(engine, partial(write, 1))
        with pytest.raises(LookupError, match="refused"):
            await run_transaction(engine, partial(write, -1))
        async with engine.connect() as conn:
            keys = (
                await conn.scalars(select(sync_state.c.key).where(sync_state.c.key.startswith(key)))
            ).all()
        assert [f"{key}-1"] == keys
        if engine.dialect.name == "sqlite":
            assert ident == await turns_of(engine).run(threading.get_ident)
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(sync_state).where(sync_state.c.key.startswith(key)))
        await engine.dispose()
