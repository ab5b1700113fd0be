"""`amosync serve`, `amosync worker`, `amosync migrate`: running the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Annotated

import typer
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from amosync.cli.common import fail, load_settings, setup_logging
from amosync.cli.ports import bind_or_exit
from amosync.cli.startup import startup_notes
from amosync.db import migrate as migrations
from amosync.db.file_guard import MissingDatabase, check_before_open, database_file, write_marker
from amosync.db.file_mode import check_database_file
from amosync.db.urls import is_sqlite, redacted
from amosync.db.wide_view import VIEW, Plan
from amosync.errors import ConfigError
from amosync.heap import freeze_startup_objects
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext
from amosync.services import build_services
from amosync.settings import Settings
from amosync.worker.paused import PAUSED_EXIT_CODE, WorkerPaused

log = logging.getLogger("amosync.cli")


def _prepare_database(settings: Settings, *, auto_migrate: bool, create: bool = False) -> None:
    """SQLite (the zero-setup default) is migrated on start; PostgreSQL must be migrated on
    purpose with `amosync migrate`, so several processes never race to change the schema.
    A SQLite file that existed before and is missing now is never re-created silently
    (db/file_guard.py): only with `create`."""
    url = settings.database_url
    db_file = database_file(url)
    if db_file is not None:
        try:
            check_before_open(db_file, create=create)
        except MissingDatabase as exc:
            fail(str(exc), 1)
    _private_database_file(settings)
    columns = settings.deal_field_column_list
    try:
        if auto_migrate and is_sqlite(url):
            _note_view(migrations.upgrade(url, columns))
            if db_file is not None:
                write_marker(db_file)
            return
        current = migrations.database_revision(url)
    except ConfigError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        problem = N_("cannot open database {url}: {error}")
        fail(problem.format(url=redacted(url), error=str(exc).splitlines()[0]), 1)
    if current is None:
        problem = N_("database {url} has no schema yet; run `amosync migrate` first")
        fail(problem.format(url=redacted(url)), 1)
    if current != migrations.head_revision():
        problem = N_("database {url} is at schema {revision}; run `amosync migrate` first")
        fail(problem.format(url=redacted(url), revision=current), 1)
    if auto_migrate:
        # PostgreSQL is migrated on purpose, but the alias view follows this process's
        # setting at every `serve` start (db/wide_view.py).
        try:
            _note_view(migrations.sync_view(url, columns))
        except ConfigError as exc:
            fail(str(exc))
        except SQLAlchemyError as exc:
            problem = N_("cannot open database {url}: {error}")
            fail(problem.format(url=redacted(url), error=str(exc).splitlines()[0]), 1)


def _note_view(plan: Plan) -> None:
    """Log what happened to the alias view, and warn while its field ids are unchecked."""
    if plan.changed:
        event = "deal_field_columns_view" if plan.sql else "deal_field_columns_dropped"
        log.info(event, extra={"event": event, "view": VIEW})
    if plan.unchecked:
        log.warning(
            "deal_field_columns_unchecked",
            extra={
                "event": "deal_field_columns_unchecked",
                "detail": f"no deal field definitions stored yet: the columns of {VIEW} are "
                "text until the first reference refresh stores them; their ids are checked then",
            },
        )


def _private_database_file(settings: Settings) -> None:
    path = settings.sqlite_path
    if path is not None:
        try:
            check_database_file(path, allow_shared=settings.allow_shared_db_file)
        except ConfigError as exc:
            fail(str(exc))


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [env: AMOSYNC_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env: AMOSYNC_PORT].")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Only receive; run `amosync worker` elsewhere.")
    ] = False,
    create: Annotated[
        bool,
        typer.Option(
            "--create",
            help="SQLite: create a new, empty database even though the old file is missing "
            "(by default serve refuses, so a deleted database is never replaced silently).",
        ),
    ] = False,
) -> None:
    """Receive webhooks and (unless --no-worker) sync deals and contacts."""
    settings = load_settings(host=host, port=port)
    setup_logging(settings)
    _prepare_database(settings, auto_migrate=True, create=create)
    from amosync.web.app import create_app  # imported late: starlette is not needed by `migrate`

    # Bound before anything starts: a busy port is one line and exit 2, not a traceback.
    sock = bind_or_exit(settings.host, settings.port, "AMOSYNC_PORT (or --port)")
    startup_notes(settings, serving=f"http://{settings.host}:{settings.port}")
    app = create_app(settings, run_worker=not no_worker, freeze_heap=True)
    log.info(
        "listening", extra={"event": "listening", "url": f"http://{settings.host}:{settings.port}"}
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, server_header=False)
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        # uvicorn returns without serving when the app's start-up failed (it logged why).
        fail(N_("the service did not start (see the log above)"), 1)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Process what is due, then exit.")] = False,
) -> None:
    """Process stored events: fetch from amoCRM and update the tables."""
    settings = load_settings()
    setup_logging(settings)
    _prepare_database(settings, auto_migrate=False)
    startup_notes(settings)
    asyncio.run(_run_worker(settings, once=once))


async def _run_worker(settings: Settings, *, once: bool) -> None:
    services = build_services(settings)
    try:
        if once:
            try:
                async with services.worker.beating():  # renews its claims (worker/claims.py)
                    while await services.worker.run_once():
                        pass
            except WorkerPaused as paused:
                fail(paused.one_line(), PAUSED_EXIT_CODE)
            return
        freeze_startup_objects()  # short full collections: see amosync/heap.py
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, services.worker.stop)
        await services.worker.run()
    finally:
        await services.aclose()


def migrate(
    check: Annotated[
        bool, typer.Option("--check", help="Only report; exit 1 if migrations are pending.")
    ] = False,
) -> None:
    """Create or upgrade the database schema."""
    settings = load_settings()
    setup_logging(settings)
    _ = cli_gettext()
    url = settings.database_url
    _private_database_file(settings)
    try:
        if check:
            current = migrations.database_revision(url)
            head = migrations.head_revision()
            said = _("database {url}: schema {revision}, newest {head}")
            shown = current or _("none")
            typer.echo(said.format(url=redacted(url), revision=shown, head=head))
            if current != head:
                raise typer.Exit(1)
            return
        _note_view(migrations.upgrade(url, settings.deal_field_column_list))
        db_file = database_file(url)
        if db_file is not None:
            write_marker(db_file)
    except ConfigError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        problem = N_("cannot migrate {url}: {error}")
        fail(problem.format(url=redacted(url), error=str(exc).splitlines()[0]), 1)
    done = _("database {url} is at schema {revision}")
    typer.echo(done.format(url=redacted(url), revision=migrations.head_revision()))
