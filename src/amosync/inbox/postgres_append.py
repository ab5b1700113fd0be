"""Inbox appends on PostgreSQL through one dedicated psycopg connection.

Through SQLAlchemy's pool a one-row commit cost about 2.8 ms of CPU per webhook at one
connection (pool checkout and its pre-ping round trip, statement compilation, parameter
handling, the transaction's events). Here one connection of our own runs a server-side
prepared INSERT (psycopg `prepare=True`) with values converted once by `DirectInsert`, so
rows are stored exactly as `InboxStore.append` stores them; the connection is opened with
the engine's own connect arguments (same JSON serializer, same settings).

The group-commit writer runs one commit after another, so one connection is enough.

A connection that broke while idle (PostgreSQL restarted, a proxy cut it) is noticed on the
INSERT: nothing was committed then, so the INSERT is tried once more on a new connection —
the pool's pre-ping did the same for the engine. A failure at COMMIT is not retried: whether
the rows landed is unknown, the requests are answered 503 and amoCRM delivers again (a
repeated event is harmless; the worker's upsert is newer-wins).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from amosync.db.database import Database
from amosync.inbox.direct_insert import DirectInsert

log = logging.getLogger(__name__)

# Seconds to wait for a new connection; the engine's pool waited as long for a free one.
CONNECT_TIMEOUT = 5


class PostgresAppender:
    """`append(rows)` commits rows into `amocrm_webhook_events` in one transaction."""

    def __init__(self, db: Database) -> None:
        if db.dialect != "postgresql":
            raise ValueError("PostgresAppender needs a PostgreSQL database")
        dialect = db.sql_dialect
        self._insert = DirectInsert(dialect, "%s")
        args, kwargs = dialect.create_connect_args(db.url)
        self._connect_args = (list(args), {"connect_timeout": CONNECT_TIMEOUT, **kwargs})
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.connections = 0  # connections opened, for tests and curiosity

    async def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        params = self._insert.params(rows)
        if not params:
            return
        reused = self._conn is not None
        conn = await self._connection()
        try:
            await self._execute(conn, params)
        except psycopg.OperationalError:
            if not conn.broken:
                raise
            await self._drop()
            if not reused:  # a new connection that breaks at once: no point in another
                raise
            log.warning(
                "inbox_connection_lost",
                extra={"event": "inbox_connection_lost", "detail": "reconnecting once"},
            )
            conn = await self._connection()
            await self._execute(conn, params)
        try:
            await conn.commit()
        except psycopg.Error:
            await self._drop()
            raise

    async def aclose(self) -> None:
        await self._drop()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            args, kwargs = self._connect_args
            self._conn = await psycopg.AsyncConnection.connect(*args, **kwargs)
            self.connections += 1
        return self._conn

    async def _execute(
        self, conn: psycopg.AsyncConnection[Any], params: list[tuple[Any, ...]]
    ) -> None:
        """The INSERT inside a transaction left open for `append` to commit. On failure the
        transaction is rolled back; a broken connection is left for `append` to replace."""
        try:
            if len(params) == 1:
                await conn.execute(self._insert.sql, params[0], prepare=True)
            else:
                async with conn.cursor() as cursor:
                    await cursor.executemany(self._insert.sql, params)
        except psycopg.Error:
            if not conn.broken:
                try:
                    await conn.rollback()
                except psycopg.Error:
                    await self._drop()
            raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()
