"""In one process on SQLite, webhook commits and the worker's transactions take turns
(inbox/turns.py) instead of meeting at SQLite's write lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.db.engine import create_service_engine
from amosync.db.tables import webhook_events
from amosync.inbox import InboxStore
from amosync.inbox.sqlite_append import SqliteAppender
from amosync.inbox.turns import WriteTurns
from tests.integration.test_sqlite_append import full_row, stored


@pytest.fixture
async def sqlite_engine(tmp_path: Path, sqlite_template: Path) -> AsyncEngine:
    path = tmp_path / "amosync.db"
    path.write_bytes(sqlite_template.read_bytes())
    return create_service_engine(f"sqlite:///{path}")


async def test_turns_run_one_at_a_time_on_sqlite_only() -> None:
    for dialect, expected in (("sqlite", ["a in", "a out", "b in", "b out"]), ("postgresql", None)):
        turns = WriteTurns.for_dialect(dialect)
        order: list[str] = []

        async def hold(name: str, turns: WriteTurns = turns, order: list[str] = order) -> None:
            async with turns.turn():
                order.append(f"{name} in")
                await asyncio.sleep(0.02)
                order.append(f"{name} out")

        await asyncio.gather(hold("a"), hold("b"))
        if expected:
            assert order == expected
        else:
            assert order[:2] == ["a in", "b in"]  # PostgreSQL locks rows: both at once


async def _append_during_transaction(
    engine: AsyncEngine, inbox: InboxStore, appender: SqliteAppender
) -> None:
    """The worker's side holds a write transaction for 0.2 s while a webhook commit comes."""
    async with inbox.transaction() as conn:
        await conn.execute(insert(webhook_events), [full_row(1)])
        append = asyncio.create_task(appender.append([full_row(2)]))
        await asyncio.sleep(0.2)
        assert not append.done()
    await asyncio.wait_for(append, 2)


@pytest.mark.parametrize("shared", [True, False], ids=["shared-turns", "own-turns"])
async def test_webhook_commit_waits_for_its_turn_not_for_sqlite(
    sqlite_engine: AsyncEngine, shared: bool
) -> None:
    """Sharing the inbox's turns, the commit never meets the lock inside SQLite (no retry)
    and lands right after the transaction. The contrast: an appender with turns of its own
    meets SQLite's lock and retries."""
    inbox = InboxStore(sqlite_engine, WriteTurns.for_dialect("sqlite"))
    appender = SqliteAppender(sqlite_engine, turns=inbox.turns if shared else None)
    try:
        await _append_during_transaction(sqlite_engine, inbox, appender)
    finally:
        await appender.aclose()
    rows = await stored(sqlite_engine)
    await sqlite_engine.dispose()
    assert (appender.lock_retries == 0) is shared
    assert [r["entity_id"] for r in rows] == [1, 2]
