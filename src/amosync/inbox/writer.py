"""Group commit: the inserts of concurrent webhook requests share one transaction.

Each request hands its rows over and waits; one task writes everything queued since the
last commit in a single transaction, then answers every waiting request. Under load a
commit carries many requests, so durable-before-ACK costs one fsync per batch, not per
request. A request is answered only after *its* rows are committed.

The service passes the database's direct appender (`direct_appender`: a connection of its
own, statement prepared once); without one, rows go through `InboxStore.append`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from amosync.db.file_guard import StorageWatch
from amosync.errors import StorageUnavailable
from amosync.inbox.postgres_append import PostgresAppender
from amosync.inbox.sqlite_append import SqliteAppender
from amosync.inbox.store import InboxStore

log = logging.getLogger(__name__)

_Row = Mapping[str, Any]
_Item = tuple[Sequence[_Row], "asyncio.Future[None]"]


class Appender(Protocol):
    async def append(self, rows: Sequence[_Row]) -> None:
        """Insert rows in one transaction."""

    async def aclose(self) -> None:
        """Release connections; called once when the writer stops."""


def direct_appender(inbox: InboxStore) -> Appender:
    """The appender for the inbox's database, skipping SQLAlchemy on the webhook path; on
    SQLite its commits take turns with the inbox's transactions (db/turns.py)."""
    db = inbox.db
    if db.dialect == "sqlite":
        return SqliteAppender(db)
    return PostgresAppender(db)


class GroupCommitWriter:
    def __init__(
        self,
        store: InboxStore,
        *,
        max_batch_rows: int = 2000,
        on_commit: Callable[[], None] | None = None,
        appender: Appender | None = None,
        watch: StorageWatch | None = None,
    ) -> None:
        self._store = store
        # Told when the database file is gone (refuse) and how each commit went (/health).
        self._watch = watch
        self._appender = appender  # the writer closes it when it stops
        self._max_batch_rows = max_batch_rows
        self._on_commit = on_commit
        # None is the stop marker: everything queued before it is still committed.
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def write(self, rows: Sequence[_Row]) -> None:
        """Return once `rows` are committed; raise StorageUnavailable if they were not."""
        if self._task is None or self._task.done():
            raise StorageUnavailable("the inbox writer is not running")
        if self._watch is not None and self._watch.refusal is not None:
            raise StorageUnavailable(self._watch.refusal)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((rows, future))
        await future

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="inbox-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        if self._appender is not None:
            await self._appender.aclose()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first[0])
            stopping = False
            while size < self._max_batch_rows and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item[0])
            await self._commit(batch)
            if stopping:
                return

    async def _commit(self, batch: list[_Item]) -> None:
        rows = [row for item_rows, _ in batch for row in item_rows]
        try:
            if rows:
                await (self._appender or self._store).append(rows)
        except (SQLAlchemyError, sqlite3.Error, psycopg.Error, OSError) as exc:
            if len(batch) > 1:
                # One request's rows may be what the database refused: commit each request
                # alone so the others are not answered 503 because of it.
                for item in batch:
                    await self._commit([item])
                return
            # Nothing was committed, so nothing is half-stored; the sender gets 503 and
            # amoCRM delivers again later.
            log.error(
                "inbox_write_failed",
                extra={"event": "inbox_write_failed", "rows": len(rows), "error": _short(exc)},
            )
            error = StorageUnavailable(f"database write failed: {_short(exc)}")
            if self._watch is not None:
                self._watch.commit_failed(_short(exc))
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        if rows and self._watch is not None:
            self._watch.commit_ok()
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        if rows and self._on_commit is not None:
            self._on_commit()


def _short(exc: BaseException) -> str:
    text = str(exc.__cause__ or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
