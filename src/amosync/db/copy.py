"""Copy every amosync table from one database to another (SQLite → PostgreSQL, or any → any).

The copy is all-or-nothing on the target: the target is migrated first, then one
transaction empties it (only with `force`), inserts every row in batches keeping its id,
moves the id sequences past the largest copied id and checks the row counts; any failure
rolls the whole copy back.

`amosync_workers` arrives empty: its rows are the heartbeats of the source's own processes,
which on the target would pass for live workers (in /health and `status`) until they aged out.

The source is read in one snapshot. On SQLite that snapshot is taken with the write lock
(our engines say BEGIN IMMEDIATE), so a `serve` still running on the source cannot
acknowledge a webhook the copy misses: its writes wait until the copy is done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, text, update
from sqlalchemy.engine import make_url

from amosync.db import migrate as migrations
from amosync.db.engine import create_sync_engine
from amosync.db.liveness import WEB_KEY_PREFIX, live_processes
from amosync.db.tables import metadata, sync_state, webhook_events, workers
from amosync.db.urls import is_sqlite, redacted, sqlite_file
from amosync.l10n.catalog import N_

DEFAULT_BATCH_SIZE = 1000

# Tables whose schema the target gets but whose rows stay behind, with the reason shown.
ROWS_NOT_COPIED = {workers.name: N_("heartbeats of the source's workers")}


class CopyRefused(Exception):
    """The copy did not start or was rolled back; the message says why and what to do."""


@dataclass(frozen=True)
class TableCopied:
    name: str
    rows: int
    not_copied: str | None = None  # why the rows stayed behind (ROWS_NOT_COPIED)


@dataclass
class CopyReport:
    tables: list[TableCopied] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)  # non-empty target tables cleared by force
    leases_released: int = 0  # events claimed by a source worker, made due again on the target

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def copy_tables() -> Sequence[Table]:
    """Every table amosync owns, parents first (there are no foreign keys today)."""
    return metadata.sorted_tables


def copy_database(
    source_url: str,
    target_url: str,
    *,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_table: Callable[[TableCopied], None] | None = None,
    even_if_running: bool = False,
) -> CopyReport:
    """Copy all amosync tables from `source_url` into `target_url` (see the module doc)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if same_database(source_url, target_url):
        raise CopyRefused("--from and --to name the same database")
    _check_source_schema(source_url)
    migrations.upgrade(target_url)  # creates a missing SQLite file and its directory

    source = create_sync_engine(source_url)
    target = create_sync_engine(target_url)
    try:
        with _snapshot(source) as src, target.begin() as dst:
            return _copy_all(
                src,
                dst,
                force=force,
                batch_size=batch_size,
                on_table=on_table,
                even_if_running=even_if_running,
            )
    finally:
        source.dispose()
        target.dispose()


def _check_source_schema(url: str) -> None:
    if is_sqlite(url) and not _sqlite_exists(url):
        raise CopyRefused(N_("source {url} does not exist").format(url=redacted(url)))
    current = migrations.database_revision(url)
    head = migrations.head_revision()
    if current != head:
        said = N_(
            "source {url} is at schema {revision}, this amosync at {head}; "
            "upgrade the source first: AMOSYNC_DATABASE_URL=<source> amosync migrate"
        )
        raise CopyRefused(said.format(url=redacted(url), revision=current or "—", head=head))


def _snapshot(engine: Engine) -> Connection:
    """A connection whose reads all see one consistent state of the source."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    conn.begin()  # SQLite: BEGIN IMMEDIATE (engine hook) — the snapshot holds the write lock
    return conn


def _copy_all(
    src: Connection,
    dst: Connection,
    *,
    force: bool,
    batch_size: int,
    on_table: Callable[[TableCopied], None] | None,
    even_if_running: bool = False,
) -> CopyReport:
    report = CopyReport()
    if not even_if_running:
        _refuse_live_target(dst)
    tables = copy_tables()
    non_empty = [t.name for t in tables if _count(dst, t) > 0]
    if non_empty and not force:
        said = N_(
            "the target already holds data in {tables}; copy into an empty database, or pass "
            "--force to delete those rows first"
        )
        raise CopyRefused(said.format(tables=", ".join(non_empty)))
    # Children before parents when clearing, should foreign keys ever appear.
    for table in reversed(tables):
        if table.name in non_empty:
            dst.execute(delete(table))
    report.emptied = non_empty

    for table in tables:
        reason = ROWS_NOT_COPIED.get(table.name)
        if reason is None:
            expected = _count(src, table)
            copied = _copy_table(src, dst, table, batch_size)
            _reset_sequence(dst, table)
        else:
            expected = copied = 0
        actual = _count(dst, table)
        if not expected == copied == actual:
            said = N_(
                "{table}: source has {n} rows, {n2} were copied, target has {n3}; "
                "nothing was committed"
            )
            raise CopyRefused(said.format(table=table.name, n=expected, n2=copied, n3=actual))
        done = TableCopied(table.name, actual, reason)
        report.tables.append(done)
        if on_table is not None:
            on_table(done)
    report.leases_released = _release_leases(dst)
    # The source's web processes are not the target's: their traces must not look alive there.
    dst.execute(
        delete(sync_state).where(sync_state.c.key.startswith(WEB_KEY_PREFIX, autoescape=True))
    )
    return report


def _refuse_live_target(dst: Connection) -> None:
    now = datetime.now(UTC)
    alive = live_processes(dst, now)
    if alive:
        said = N_(
            "amosync is running on the target: {processes}; stop them first (a copy replaces "
            "what they write), or pass --even-if-running"
        )
        raise CopyRefused(said.format(processes=", ".join(p.describe(now) for p in alive)))


def _release_leases(dst: Connection) -> int:
    """Events a source worker had claimed are due at once on the target.

    No worker of the source will ever finish them there; without this they would wait out
    the rest of their lease (AMOSYNC_WORKER_LEASE_SECONDS). Processing twice is harmless:
    upserts are idempotent and newer-wins.
    """
    result = dst.execute(
        update(webhook_events)
        .where(webhook_events.c.status == "pending", webhook_events.c.locked_by.is_not(None))
        .values(locked_by=None, available_at=datetime.now(UTC))
    )
    return int(result.rowcount)


def _copy_table(src: Connection, dst: Connection, table: Table, batch_size: int) -> int:
    order = list(table.primary_key.columns)
    result = src.execution_options(yield_per=batch_size).execute(select(table).order_by(*order))
    copied = 0
    for batch in result.partitions():
        rows = [dict(row._mapping) for row in batch]
        dst.execute(insert(table), rows)
        copied += len(rows)
    return copied


def _reset_sequence(dst: Connection, table: Table) -> None:
    """PostgreSQL: the next generated id follows the largest copied one, not 1.

    SQLite needs nothing: an INTEGER PRIMARY KEY continues after the largest rowid.
    """
    if dst.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        if column.autoincrement is not True:
            continue
        largest = dst.execute(select(func.max(column))).scalar_one()
        # setval(seq, n, false) makes n the next value; (seq, max, true) makes max + 1 next.
        dst.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, :column), :value, :called)"),
            {
                "table": table.name,
                "column": column.name,
                "value": 1 if largest is None else int(largest),
                "called": largest is not None,
            },
        )


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _sqlite_exists(url: str) -> bool:
    path = sqlite_file(url)
    return path is not None and path.exists()


def same_database(a: str, b: str) -> bool:
    """Whether two URLs name one database (one SQLite file, or one PostgreSQL database)."""
    file_a, file_b = sqlite_file(a), sqlite_file(b)
    if file_a is not None or file_b is not None:
        return file_a is not None and file_b is not None and _resolve(file_a) == _resolve(file_b)
    url_a, url_b = make_url(a), make_url(b)
    return (url_a.host, url_a.port or 5432, url_a.database) == (
        url_b.host,
        url_b.port or 5432,
        url_b.database,
    )


def _resolve(path: Path) -> Path:
    return path.expanduser().resolve()
