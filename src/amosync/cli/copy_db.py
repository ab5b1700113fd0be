"""`amosync copy-db`: move an installation to another database (usually SQLite → PostgreSQL)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.cli.common import fail
from amosync.db.copy import (
    DEFAULT_BATCH_SIZE,
    CopyRefused,
    TableCopied,
    copy_database,
    same_database,
)
from amosync.db.urls import redacted, sync_url
from amosync.errors import ConfigError
from amosync.l10n import N_
from amosync.l10n.cli import _


def copy_db(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Database to copy from, e.g. sqlite:///./amosync.db (must be fully migrated).",
        ),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to",
            help="Database to copy into, e.g. postgresql://amosync@db/amosync (migrated first). "
            "A password can come from PGPASSWORD or ~/.pgpass instead of the URL.",
        ),
    ],
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete the rows a non-empty target already holds."),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per insert batch.")
    ] = DEFAULT_BATCH_SIZE,
    even_if_running: Annotated[
        bool,
        typer.Option(
            "--even-if-running",
            help="Copy although amosync processes look alive on the target (recent heartbeats).",
        ),
    ] = False,
) -> None:
    """Copy events, deals, contacts, companies, links, tokens and state to another database.

    Stop `serve` and `worker` first: the target is refused while amosync processes run on it
    (unless --even-if-running), and when it already holds data (unless --force). Ids are
    kept, and row counts are checked before the copy commits.
    """
    for url in (source, target):
        try:
            sync_url(url)
        except ConfigError as exc:
            fail(str(exc).replace("AMOSYNC_DATABASE_URL", "--from/--to"))
    if same_database(source, target):
        fail(N_("--from and --to name the same database"))

    def progress(table: TableCopied) -> None:
        if table.not_copied is not None:
            said = _("  {table}: rows not copied ({reason})")
            typer.echo(said.format(table=table.name, reason=_(table.not_copied)))
        else:
            typer.echo(_("  {table}: {n} rows").format(table=table.name, n=table.rows))

    typer.echo(
        _("copying {source} → {target}").format(source=redacted(source), target=redacted(target))
    )
    try:
        report = copy_database(
            source,
            target,
            force=force,
            batch_size=batch_size,
            on_table=progress,
            even_if_running=even_if_running,
        )
    except CopyRefused as exc:
        fail(str(exc), 1)
    except SQLAlchemyError as exc:
        fail(
            N_("copy failed, nothing was committed: {error}").format(
                error=str(exc).splitlines()[0]
            ),
            1,
        )
    if report.emptied:
        typer.echo(_("cleared first (--force): {tables}").format(tables=", ".join(report.emptied)))
    if report.leases_released:
        released = _("{n} events a source worker had claimed are due again on the target")
        typer.echo(released.format(n=report.leases_released))
    done = _(
        "copied {n} rows in {n2} tables; row counts match. Point AMOSYNC_DATABASE_URL at the "
        "target and start amosync."
    )
    typer.echo(done.format(n=report.rows, n2=len(report.tables)))
