"""Inbox appends on SQLite through one dedicated `sqlite3` connection.

Through SQLAlchemy and aiosqlite a one-row commit costs about 1.2 ms of CPU (statement
compilation and parameter handling, plus several thread hand-offs for BEGIN, INSERT and
COMMIT). Here the statement and the value conversions are prepared once (`InboxInsert`), so
rows are stored exactly as `InboxStore.append` stores them (PRAGMAs included).

Where the commit runs depends on its size. A commit of one request's rows — the normal case
below a few hundred webhooks per second — runs on the event loop's thread: the hand-off to a
thread and back cost more CPU (~0.2 ms per commit, measured) than the commit itself, and
nothing else is waiting to use the loop meanwhile. A larger commit (many requests arrived
together) runs on a thread of its own, so the loop parses the next requests during the fsync.

In `serve` the commits take turns with the in-process worker's transactions (`WriteTurns`,
inbox/turns.py), so the two never wait for each other inside SQLite.

Nothing here may block the loop for long, so two things SQLite would otherwise do inside
the commit happen elsewhere: waiting for another connection's write lock (this connection
has `busy_timeout=0`; `append` retries with asyncio sleeps, up to the service's usual
busy timeout), and WAL checkpoints (`wal_autocheckpoint=0` here; when the WAL has grown
past CHECKPOINT_PAGES a PASSIVE checkpoint runs on another thread and connection).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

# The service engine's PRAGMAs (WAL, synchronous=FULL, busy_timeout), so durability is the same.
from amosync.db.engine import _SQLITE_PRAGMAS, SQLITE_BUSY_TIMEOUT_MS
from amosync.inbox.insert_values import InboxInsert
from amosync.inbox.turns import WriteTurns

log = logging.getLogger(__name__)

# Commits of at most this many rows run on the loop's thread (see the module doc).
INLINE_MAX_ROWS = 2
# SQLite's own auto-checkpoint starts when the WAL holds 1,000 pages; so do we, by estimate.
CHECKPOINT_PAGES = 1000
# Pauses between attempts to take the write lock: short first, as SQLite's busy handler does.
_LOCK_RETRY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05)


class SqliteAppender:
    """`append(rows)` commits rows into `amocrm_webhook_events` in one transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        lock_timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
        checkpoint_pages: int = CHECKPOINT_PAGES,
        turns: WriteTurns | None = None,
    ) -> None:
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database:
            raise ValueError("SqliteAppender needs a SQLite engine with a database file")
        self._path = database
        self._lock_timeout = lock_timeout
        self._turns = turns or WriteTurns(enabled=False)
        self._checkpoint_pages = checkpoint_pages
        self._pages_since_checkpoint = 0
        self._insert = InboxInsert(engine.dialect, "?")
        # The connection is used by one commit at a time (the group-commit writer runs one
        # commit after another), on the loop's thread or on this executor's.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inbox-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="inbox-checkpoint")
        self._checkpoint_conn: sqlite3.Connection | None = None  # the checkpointer's thread only
        self._checkpoint: asyncio.Future[None] | None = None
        self.checkpoints = 0  # checkpoints started, for tests and curiosity
        self.lock_retries = 0  # commits retried because another connection held the lock

    async def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        params = self._insert.params(rows)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_timeout
        for attempt in itertools.count():
            if attempt:
                self.lock_retries += 1
            try:
                async with self._turns.turn():
                    if len(params) <= INLINE_MAX_ROWS:
                        self._commit(params)
                    else:
                        await loop.run_in_executor(self._executor, self._commit, params)
                break
            except sqlite3.OperationalError as exc:
                # Only "another connection holds the write lock" is worth waiting for.
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or loop.time() >= deadline:
                    raise
            delay = _LOCK_RETRY_DELAYS[min(attempt, len(_LOCK_RETRY_DELAYS) - 1)]
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        # sqlite3 cannot tell how many pages a commit added to the WAL (no wal_hook), and
        # the file's size does not shrink after a checkpoint, so estimate: a table leaf and
        # the index leaves per commit, plus about a page per three rows of a large batch.
        self._pages_since_checkpoint += 5 + len(params) // 3
        if self._pages_since_checkpoint >= self._checkpoint_pages:
            self._start_checkpoint(loop)

    async def aclose(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checkpointer, self._close_checkpoint_conn)
        self._checkpointer.shutdown(wait=True)
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: the transaction is ours to open (BEGIN IMMEDIATE takes the write
        # lock up front, like the service engine does).
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        for pragma in _SQLITE_PRAGMAS:
            conn.execute(pragma)
        return conn

    def _commit(self, params: list[tuple[Any, ...]]) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect()
            conn.execute("PRAGMA busy_timeout=0")  # waits happen in `append`, not here
            conn.execute("PRAGMA wal_autocheckpoint=0")  # see `_start_checkpoint`
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(self._insert.sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _start_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        """A PASSIVE checkpoint on the checkpointer's thread: it never waits for locks or
        blocks writers. The worker's connections may checkpoint too (SQLite's default)."""
        if self._checkpoint is not None and not self._checkpoint.done():
            return  # the running one takes care of these pages too
        self._pages_since_checkpoint = 0
        self.checkpoints += 1
        self._checkpoint = loop.run_in_executor(self._checkpointer, self._run_checkpoint)

    def _run_checkpoint(self) -> None:
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = self._connect()
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            # Harmless for the data (the WAL keeps it); the next commit past the size tries again.
            log.warning(
                "inbox_checkpoint_failed",
                extra={"event": "inbox_checkpoint_failed", "error": str(exc)},
            )

    def _close_checkpoint_conn(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
