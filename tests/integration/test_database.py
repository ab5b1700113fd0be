"""`Database` (db/database.py): reads never block a writer, writes take turns on SQLite, and
no module can be handed a bare engine."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

import amosync
from amosync.db.database import Database
from amosync.db.tables import sync_state
from amosync.inbox import InboxStore


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> Database:
    database = Database.open(f"sqlite:///{tmp_path / 'database.db'}")
    async with database.write() as conn:
        await conn.execute(text("CREATE TABLE t (v INTEGER)"))
        await conn.execute(text("INSERT INTO t VALUES (1)"))
    return database


async def test_a_read_does_not_block_a_concurrent_write_on_sqlite(
    sqlite_database: Database,
) -> None:
    """A read in the middle of its transaction (it has read, so it holds its snapshot) does
    not hold the write lock: a write commits meanwhile, and the read still sees its
    snapshot."""
    database = sqlite_database
    try:
        async with database.read() as reader:
            assert 1 == await reader.scalar(text("SELECT count(*) FROM t"))

            async def write() -> None:
                async with database.write() as conn:
                    await conn.execute(text("INSERT INTO t VALUES (2)"))

            await asyncio.wait_for(write(), 5)  # busy_timeout is 15 s: no waiting at all
            assert 1 == await reader.scalar(text("SELECT count(*) FROM t"))  # its snapshot
        async with database.read() as reader:
            assert 2 == await reader.scalar(text("SELECT count(*) FROM t"))
    finally:
        await database.dispose()


async def test_a_read_cannot_write(sqlite_database: Database) -> None:
    try:
        async with sqlite_database.read() as conn:
            with pytest.raises(OperationalError, match="readonly"):
                await conn.execute(text("INSERT INTO t VALUES (3)"))
    finally:
        await sqlite_database.dispose()


async def test_writes_take_turns_on_sqlite_and_not_on_postgresql(database: Database) -> None:
    """On SQLite the second writer starts only once the first has committed (it waits for
    the turn, not inside SQLite); on PostgreSQL both transactions are open at once."""
    order: list[str] = []
    first_in = asyncio.Event()

    async def writer(name: str) -> None:
        async with database.write() as conn:
            order.append(f"{name} in")
            first_in.set()
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    async def second() -> None:
        await first_in.wait()
        await writer("b")

    await asyncio.wait_for(asyncio.gather(writer("a"), second()), 10)
    if database.dialect == "sqlite":
        assert ["a in", "a out", "b in", "b out"] == order
    else:
        assert ["a in", "b in"] == order[:2]


async def _write_then_fail(database: Database) -> None:
    async with database.write() as conn:
        await conn.execute(
            sync_state.insert().values(key="x", value={}, updated_at=datetime.now(UTC))
        )
        raise LookupError("after the insert")


async def test_write_rolls_back_when_the_block_raises(database: Database) -> None:
    with pytest.raises(LookupError, match="after the insert"):
        await _write_then_fail(database)
    async with database.read() as conn:
        assert 0 == await conn.scalar(select(func.count()).select_from(sync_state))


def _parameters_typed_as_an_engine() -> list[str]:
    """Every parameter in amosync annotated with an engine type, outside the db package's
    own engine machinery."""
    allowed = {"amosync.db.engine", "amosync.db.database", "amosync.db.thread_transactions"}
    found: list[str] = []
    for info in pkgutil.walk_packages(amosync.__path__, "amosync."):
        if info.name in allowed or ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != info.name:
                continue
            functions = [value] if inspect.isfunction(value) else []
            if inspect.isclass(value):
                functions += [f for f in vars(value).values() if inspect.isfunction(f)]
            for function in functions:
                for parameter, annotation in function.__annotations__.items():
                    if "AsyncEngine" in str(annotation) and parameter != "return":
                        found.append(f"{info.name}.{name}: {parameter}")
    return found


def test_no_module_takes_a_bare_engine() -> None:
    """Modules take a `Database`; mypy (strict, in scripts/check) then refuses an engine."""
    assert [] == _parameters_typed_as_an_engine()
    parameters = inspect.signature(InboxStore).parameters
    assert ["db"] == list(parameters)  # no turns of its own to default to
    assert "Database" == parameters["db"].annotation
