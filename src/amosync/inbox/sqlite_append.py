"""Inbox appends on SQLite through one dedicated `sqlite3` connection.

Through SQLAlchemy and aiosqlite a one-row commit costs about 1.2 ms of CPU (statement
compilation and parameter handling, plus several thread hand-offs for BEGIN, INSERT and
COMMIT). Here the statement and the value conversions are prepared once (`DirectInsert`), so
rows are stored exactly as `InboxStore.append` stores them (PRAGMAs included), and a commit
of up to `ROWS_PER_STATEMENT` rows is a single multi-row INSERT in autocommit mode.

Commits run on the writer thread of the turns (`WriteTurns`, db/turns.py): in `serve`, after
the in-process worker's transactions queued before them and never at the same time, so the two
never wait for each other inside SQLite; and the loop parses the next requests during the
fsync. One exception: a commit of one request's rows — the normal case below a few hundred
webhooks per second — runs on the event loop's thread when the writer thread has nothing to
do: the hand-off to a thread and back cost more CPU (~0.2 ms per commit, measured) than the
commit itself.

Nothing here may block the loop for long, so two things SQLite would otherwise do inside
the commit happen elsewhere: waiting for another connection's write lock (this connection
has `busy_timeout=0`; `append` retries with asyncio sleeps, up to the service's usual
busy timeout), and WAL checkpoints (`wal_autocheckpoint=0` here, as on the service engine's
connections; the database's checkpointer runs them on a thread of its own, db/wal_checkpoint.py).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

# The service engine's PRAGMAs (WAL, synchronous=FULL, busy_timeout), so durability is the same.
from amosync.db.database import Database
from amosync.db.engine import SQLITE_BUSY_TIMEOUT_MS, connect_sqlite
from amosync.inbox.direct_insert import DirectInsert

# Commits of at most this many rows run on the loop's thread if they can (see the module doc).
INLINE_MAX_ROWS = 2
# Rows per INSERT statement. The `sqlite3` module lets go of the GIL around every step of a
# statement and must take it back after, and in `serve` the loop's thread holds it most of
# the time: an `executemany` of 17 rows (17 steps, plus BEGIN and COMMIT) held the write turn
# ~1.5 ms for 0.2 ms of SQLite. One statement of all the rows is one step, and by itself one
# atomic transaction. 64 rows of 15 parameters stay within the oldest SQLite limit of 999.
ROWS_PER_STATEMENT = 64
# Pauses between attempts to take the write lock: short first, as SQLite's busy handler does.
_LOCK_RETRY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05)


class SqliteAppender:
    """`append(rows)` commits rows into `amocrm_webhook_events` in one transaction."""

    def __init__(
        self,
        db: Database,
        *,
        lock_timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
    ) -> None:
        database = db.url.database
        if db.dialect != "sqlite" or not database:
            raise ValueError("SqliteAppender needs a SQLite database file")
        self._path = database
        self._lock_timeout = lock_timeout
        self._turns = db.turns  # the database's: the writer thread is not ours to stop
        self._checkpointer = db.checkpointer
        self._insert = DirectInsert(db.sql_dialect, "?")
        # The connection is used by one commit at a time (the group-commit writer runs one
        # commit after another), on the loop's thread or on the writer thread.
        self._conn: sqlite3.Connection | None = None
        self.lock_retries = 0  # commits retried because another connection held the lock

    async def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        params = self._insert.params(rows)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_timeout
        for attempt in itertools.count():
            if attempt:
                self.lock_retries += 1
            try:
                if len(params) <= INLINE_MAX_ROWS and self._turns.idle():
                    self._commit(params)
                else:
                    await self._turns.run(self._commit, params)
                break
            except sqlite3.OperationalError as exc:
                # Only "another connection holds the write lock" is worth waiting for.
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                    raise
            delay = _LOCK_RETRY_DELAYS[min(attempt, len(_LOCK_RETRY_DELAYS) - 1)]
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        if self._checkpointer is not None:
            self._checkpointer.written()

    async def aclose(self) -> None:
        await self._turns.run(self._close)

    def _commit(self, params: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = connect_sqlite(self._path, create=False)
            conn.execute("PRAGMA busy_timeout=0")  # waits happen in `append`, not here
            if self._checkpointer is not None:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
        statements = [
            (self._insert.multi_row_sql(len(chunk)), [value for row in chunk for value in row])
            for chunk in (
                params[start : start + ROWS_PER_STATEMENT]
                for start in range(0, len(params), ROWS_PER_STATEMENT)
            )
        ]
        if len(statements) == 1:
            conn.execute(*statements[0])  # autocommit: the statement is the transaction
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, values in statements:
                conn.execute(sql, values)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
