"""The PostgreSQL fast path of the group-commit writer stores rows exactly as InboxStore does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.types.string import TextLoader

from amosync.db.database import Database
from amosync.errors import StorageUnavailable
from amosync.inbox import GroupCommitWriter, InboxStore
from amosync.inbox.postgres_append import PostgresAppender
from amosync.inbox.sqlite_append import SqliteAppender
from amosync.inbox.writer import direct_appender
from tests.conftest import libpq_url, truncate_pg
from tests.integration.test_sqlite_append import full_row


@pytest.fixture
async def pg_database(pg_url: str) -> AsyncIterator[Database]:
    truncate_pg(pg_url)
    database = Database.open(pg_url)
    yield database
    await database.dispose()


def stored(url: str) -> list[dict[str, Any]]:
    """Rows as PostgreSQL holds them, every column as its text form, without `id`."""
    with psycopg.connect(libpq_url(url)) as conn:
        for name in ("jsonb", "timestamptz"):  # the server's own text, not Python objects
            conn.adapters.register_loader(name, TextLoader)
        cur = conn.execute("SELECT * FROM amocrm_webhook_events ORDER BY id")
        names = [d.name for d in cur.description or ()]
        rows = cur.fetchall()
    return [
        {n: (None if v is None else str(v)) for n, v in zip(names, row, strict=True) if n != "id"}
        for row in rows
    ]


async def test_rows_equal_inbox_store_rows(pg_database: Database, pg_url: str) -> None:
    appender = PostgresAppender(pg_database)
    try:
        await InboxStore(pg_database).append([full_row(1)])
        await appender.append([full_row(1)])
        # Keys left out get the column default (attempts) or NULL, as with InboxStore.
        short = {k: v for k, v in full_row(2).items() if k not in ("attempts", "locked_by")}
        await InboxStore(pg_database).append([short])
        await appender.append([short, short])  # several rows: the executemany branch
    finally:
        await appender.aclose()
    via_store, via_appender, short_store, *short_appender = stored(pg_url)
    assert via_store == via_appender
    assert short_appender == [short_store, short_store]
    assert via_store["payload"] == '{"id": "1", "name": "Сделка", "custom_fields": [{"v": "1"}]}'
    assert via_store["received_at"] == "2026-03-01 12:30:05.123456+00"


async def test_writer_commits_concurrent_writes(pg_database: Database, pg_url: str) -> None:
    """200 concurrent writes are all stored, over the one connection."""
    appender = PostgresAppender(pg_database)
    writer = GroupCommitWriter(InboxStore(pg_database), appender=appender)
    writer.start()
    try:
        await asyncio.gather(*(writer.write([full_row(i)]) for i in range(200)))
    finally:
        await writer.stop()
    assert sorted(int(r["entity_id"]) for r in stored(pg_url)) == list(range(200))
    assert appender.connections == 1


async def test_refused_row_fails_only_its_request(pg_database: Database, pg_url: str) -> None:
    """A row PostgreSQL refuses (too long for its column) fails its own request; the others
    in the same group commit are stored, and the connection stays usable."""
    appender = PostgresAppender(pg_database)
    writer = GroupCommitWriter(InboxStore(pg_database), appender=appender)
    writer.start()
    bad = full_row(99) | {"source": "x" * 40}  # source is VARCHAR(16)
    try:
        results = await asyncio.gather(
            *(writer.write([full_row(i)]) for i in range(5)),
            writer.write([bad]),
            *(writer.write([full_row(i)]) for i in range(5, 10)),
            return_exceptions=True,
        )
        await writer.write([full_row(10)])
    finally:
        await writer.stop()
    assert [type(r) for r in results].count(StorageUnavailable) == 1
    assert isinstance(results[5], StorageUnavailable)
    assert sorted(int(r["entity_id"]) for r in stored(pg_url)) == list(range(11))
    assert appender.connections == 1


async def test_connection_lost_while_idle_is_replaced(
    pg_database: Database, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL ends the idle connection (a restart, a proxy): the next append notices on
    its INSERT, nothing having been committed, and stores the rows over a new connection."""
    appender = PostgresAppender(pg_database)
    try:
        await appender.append([full_row(1)])
        with psycopg.connect(libpq_url(pg_url), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state = 'idle' AND query = 'COMMIT') AS t"
            ).fetchone()
        assert killed == (1,)
        with caplog.at_level(logging.WARNING, logger="amosync.inbox.postgres_append"):
            await appender.append([full_row(2)])
    finally:
        await appender.aclose()
    assert [int(r["entity_id"]) for r in stored(pg_url)] == [1, 2]
    assert appender.connections == 2
    assert "inbox_connection_lost" in caplog.text


async def test_unreachable_database_is_storage_unavailable() -> None:
    """Nothing listening: the request gets StorageUnavailable, the writer lives on."""
    database = Database.open("postgresql://postgres@127.0.0.1:1/nowhere")
    writer = GroupCommitWriter(InboxStore(database), appender=PostgresAppender(database))
    writer.start()
    try:
        for entity_id in (1, 2):
            with pytest.raises(StorageUnavailable):
                await writer.write([full_row(entity_id)])
    finally:
        await writer.stop()
        await database.dispose()


async def test_direct_appender_matches_the_database(pg_database: Database, tmp_path: Any) -> None:
    sqlite = Database.open(f"sqlite:///{tmp_path}/a.db")
    try:
        assert isinstance(direct_appender(InboxStore(sqlite)), SqliteAppender)
        assert isinstance(direct_appender(InboxStore(pg_database)), PostgresAppender)
    finally:
        await sqlite.dispose()
