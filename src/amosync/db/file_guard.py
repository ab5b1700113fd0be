"""The SQLite file under a running service, and the file a new start would open.

Two accidents lose data silently on SQLite, and this module stops both:

- The file is deleted or replaced while `serve` runs (a cleanup script, a restore copied over
  it, a volume re-mounted). The open connections keep writing into the old, unlinked inode:
  webhooks are acknowledged into a file nobody will ever open again. `FileGuard` keeps a
  descriptor of the file it started with and compares it with what the path names now
  (device and inode, and the link count), every `CHECK_INTERVAL` seconds, off the webhook
  path. Once they differ it logs `database_file_replaced`, and `StorageWatch.refusal` makes
  the webhook writer answer 503 (amoCRM delivers again later) and every new database
  transaction of the service fail, until the service is restarted on the right file.

- A start on a missing file that existed before. SQLite creates a missing file on open, so
  the next start would begin an empty database with the events and OAuth tokens gone.
  `check_before_open` refuses that unless told (`serve --create`). "Existed before" is known
  from traces the database leaves next to itself: our marker `<file>-amosync` (written at
  every start once the file exists) or SQLite's own `<file>-wal` / `<file>-shm` /
  `<file>-journal`. A first start in an empty directory has none of them and creates the
  file, as always. (Deleting the whole directory removes the traces too: nothing inside the
  directory can tell that apart from a first start.)

`StorageWatch` also remembers how the webhook writer's last commit went, so `/health` fails at
once on a full disk instead of after the backlog grows old.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from amosync.db.database import Database
from amosync.db.urls import sqlite_file
from amosync.l10n.catalog import N_

log = logging.getLogger(__name__)

CHECK_INTERVAL = 2.0  # seconds between two looks at the path
MARKER_SUFFIX = "-amosync"
SQLITE_TRACES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class CommitOutcome:
    at: datetime
    error: str | None  # None: committed


class StorageWatch:
    """What the service knows about its storage beyond a query answering: shared by the
    webhook writer (which reads `refusal` and reports its commits) and `/health`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.refusal: str | None = None  # set once the database file is gone or replaced
        self.refused_since: datetime | None = None
        self.last_commit: CommitOutcome | None = None
        self.failing_since: datetime | None = None  # first failure after the last success
        # The guard's look at the file, for a caller whose query just failed: the file being
        # gone explains it better than the driver's "unable to open database file".
        self.look_again: Callable[[], str | None] = lambda: self.refusal

    def refuse(self, reason: str) -> bool:
        """Refuse from now on; True for the call that tripped it (the guard runs on the
        loop and, before new connections, on the writer thread)."""
        with self._lock:
            if self.refusal is not None:
                return False
            self.refusal, self.refused_since = reason, datetime.now(UTC)
            return True

    def commit_ok(self) -> None:
        self.last_commit, self.failing_since = CommitOutcome(datetime.now(UTC), None), None

    def commit_failed(self, error: str) -> None:
        now = datetime.now(UTC)
        self.last_commit = CommitOutcome(now, error)
        self.failing_since = self.failing_since or now


def marker_path(db_file: Path) -> Path:
    return db_file.with_name(db_file.name + MARKER_SUFFIX)


def traces_of(db_file: Path) -> list[Path]:
    """Files next to `db_file` that say a database lived there."""
    names = [MARKER_SUFFIX, *SQLITE_TRACES]
    return [p for p in (db_file.with_name(db_file.name + n) for n in names) if p.exists()]


class MissingDatabase(Exception):
    """The database file is missing but existed before: starting would create an empty one."""


def check_before_open(db_file: Path, *, create: bool) -> None:
    """Raise MissingDatabase when `db_file` is missing and traces say it existed, unless
    `create`; then the stale SQLite traces are moved aside (a WAL without its database
    would be replayed into the new, empty file)."""
    if db_file.exists():
        if create or not marker_path(db_file).exists() or _holds_a_schema(db_file):
            return
        # The marker says amosync's database lived here, but this file has no schema: SQLite
        # created it empty when something opened the path after the real file was deleted.
        said = N_(
            "database file {path} is empty, but {marker} says amosync's database was here: "
            "the old file was deleted or moved and an empty one took its place. Restore it "
            "from a backup, or begin with an empty database (the old one's webhook events and "
            "OAuth tokens are lost) with `amosync serve --create` or `amosync migrate`."
        )
        raise MissingDatabase(said.format(path=db_file, marker=marker_path(db_file).name))
    traces = traces_of(db_file)
    if not traces:
        return  # a first start: SQLite creates the file
    if not create:
        said = N_(
            "database file {path} is missing, but it existed before ({traces} found next to "
            "it): it was deleted or moved. Restore it from a backup, or begin with an empty "
            "database (the old one's webhook events and OAuth tokens are lost) with `amosync "
            "serve --create` or `amosync migrate`."
        )
        traces_found = ", ".join(p.name for p in traces)
        raise MissingDatabase(said.format(path=db_file, traces=traces_found))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for trace in traces:
        if trace.name.endswith(MARKER_SUFFIX):
            trace.unlink()
        else:
            trace.rename(trace.with_name(f"{trace.name}.orphaned-{stamp}"))
    log.warning(
        "database_created_on_request",
        extra={"event": "database_created_on_request", "path": str(db_file)},
    )


def _holds_a_schema(db_file: Path) -> bool:
    """Whether the file has any table (read-only: never creates or changes it)."""
    try:
        conn = sqlite3.connect(f"{db_file.absolute().as_uri()}?mode=ro", uri=True)
        try:
            tables: int = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            return tables > 0
        finally:
            conn.close()
    except sqlite3.Error:
        return True  # not ours to judge (locked, not a database): opening it will say


def write_marker(db_file: Path) -> None:
    """Note next to an existing database file that it exists (see `check_before_open`)."""
    marker = marker_path(db_file)
    if db_file.exists() and not marker.exists():
        note = {"database": db_file.name, "since": datetime.now(UTC).isoformat()}
        with contextlib.suppress(OSError):  # a read-only directory: SQLite's traces remain
            marker.write_text(
                json.dumps(note) + "\n# amosync: the database file above exists; do not remove\n"
            )


class FileGuard:
    """Watches that the path still names the file the service opened (see the module doc)."""

    def __init__(self, db_file: Path, watch: StorageWatch) -> None:
        self._path = db_file
        self.watch = watch
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        watch.look_again = self.check

    def open(self) -> None:
        """Hold the file the service works on (`serve` migrated it, so it exists; if not
        yet, the first look after it appears adopts it)."""
        if self._fd is None:
            with contextlib.suppress(FileNotFoundError):
                self._fd = os.open(self._path, os.O_RDONLY)

    def check(self) -> str | None:
        """The refusal reason once the path no longer names our file; None while it does."""
        if self._fd is None:
            self.open()
        if self._fd is None or self.watch.refusal is not None:
            return self.watch.refusal
        ours = os.fstat(self._fd)
        try:
            now = os.stat(self._path)
        except FileNotFoundError:
            now = None
        if now is None:
            problem = "was deleted"
        elif (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino):
            # Replaced, or deleted and re-created: a new connection to the path makes SQLite
            # create a fresh file there, so the two cannot be told apart afterwards.
            problem = "was deleted or replaced by another file"
        elif ours.st_nlink == 0:
            problem = "was deleted"
        else:
            return None
        reason = (
            f"the database file {self._path} {problem} while the service was running: "
            "webhooks are refused (503) until it is restarted on the right file"
        )
        if not self.watch.refuse(reason):
            return self.watch.refusal
        log.error(
            "database_file_replaced",
            extra={"event": "database_file_replaced", "path": str(self._path), "problem": problem},
        )
        return reason

    def start(self) -> None:
        self.open()
        self._task = asyncio.create_task(self._run(), name="database-file-guard")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    async def _run(self) -> None:
        while True:
            if self.check() is not None:
                return  # tripped for good: the service must be restarted
            await asyncio.sleep(CHECK_INTERVAL)


def refuse_transactions(db: Database, guard: FileGuard) -> None:
    """Every new transaction on `db` fails once the guard refuses: the in-process worker
    must not go on writing into the unlinked file either. A new connection first looks at the
    guard: opening a deleted file's path would make SQLite create an empty database there."""
    watch = guard.watch

    def _on_begin(conn: Any) -> None:
        if watch.refusal is not None:
            raise OperationalError("BEGIN", None, sqlite3.OperationalError(watch.refusal))

    def _on_connect(*_args: Any) -> None:
        if guard.check() is not None:
            raise OperationalError("connect", None, sqlite3.OperationalError(watch.refusal))

    # The service engine, its twin for writes on the writer thread and its read engine:
    # every door to the file.
    for sync_engine in db.sync_engines():
        # First, before engine.py's listener says BEGIN IMMEDIATE: refuse before the lock.
        event.listen(sync_engine, "begin", _on_begin, insert=True)
        event.listen(sync_engine, "do_connect", _on_connect)


def database_file(url: str) -> Path | None:
    """The SQLite file of a database URL; None for PostgreSQL and in-memory databases."""
    found = sqlite_file(url)
    return None if found is None else sqlite_path(str(found))


def sqlite_path(database: str | None) -> Path | None:
    """The file of a SQLite URL's database part; None for in-memory databases."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def guard_for(db: Database, watch: StorageWatch) -> FileGuard | None:
    """The guard for a SQLite service engine's file (wired to refuse transactions once it
    trips); None for PostgreSQL and in-memory databases."""
    path = sqlite_path(db.url.database) if db.dialect == "sqlite" else None
    if path is None:
        return None
    guard = FileGuard(path, watch)
    refuse_transactions(db, guard)
    return guard
