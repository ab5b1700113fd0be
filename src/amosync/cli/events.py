"""`amosync events list|show|retry|prune`: look at the inbox, send failed events back to it,
delete old settled ones.

Retry never duplicates data: a retried event is fetched from amoCRM again and stored by
the same newer-wins upsert as any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.cli.common import fail, load_settings
from amosync.db.database import Database
from amosync.db.urls import redacted
from amosync.inbox.admin import (
    MAX_LIST_LIMIT,
    EventView,
    get_event,
    list_events,
    retry_all_failed,
    retry_events,
)
from amosync.inbox.retention import Pruned, prune
from amosync.inbox.store import STATUSES
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext, cli_language_now
from amosync.l10n.phrases import translate
from amosync.l10n.zone import display_zone, local_when

T = TypeVar("T")

events_app = typer.Typer(help="Inspect webhook events and retry failed ones.", no_args_is_help=True)


@events_app.command("list")
def list_command(
    status: Annotated[
        str | None, typer.Option(help=f"Only events in this state: {', '.join(STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(help=f"How many, newest first (1–{MAX_LIST_LIMIT}).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List events, newest first."""
    if status is not None and status not in STATUSES:
        problem = N_("--status: unknown status {status}; use one of: {known}")
        fail(problem.format(status=repr(status), known=", ".join(STATUSES)))
    if not 1 <= limit <= MAX_LIST_LIMIT:
        fail(N_("--limit: must be between 1 and {n}").format(n=MAX_LIST_LIMIT))
    events = _run(lambda db: list_events(db, status=status, limit=limit))
    if as_json:
        typer.echo(orjson.dumps([e.as_json() for e in events]).decode())
        return
    _, lang, zone = cli_gettext(), cli_language_now(), display_zone()
    if not events:
        if status:
            typer.echo(_("No events with status {status}.").format(status=_(status)))
        else:
            typer.echo(_("No events."))
        return
    received_at, entity, action = _("RECEIVED"), _("ENTITY"), _("ACTION")
    entity_id_at, status_at, tries, error_at = _("ENTITY ID"), _("STATUS"), _("TRIES"), _("ERROR")
    received_at += f" ({events[0].received_at.astimezone(zone).tzname()})"
    header = f"{'ID':>8}  {received_at:<19}  {entity:<10} {action:<11} {entity_id_at:>10}  "
    typer.echo(header + f"{status_at:<8} {tries:>5}  {error_at}")
    for e in events:
        received = e.received_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        entity_id = "" if e.entity_id is None else str(e.entity_id)
        error = translate((e.last_error or "").replace("\n", " "), lang)[:60]
        typer.echo(
            f"{e.id:>8}  {received:<19}  {_(e.entity):<10} {_(e.action):<11} {entity_id:>10}  "
            f"{_(e.status):<8} {e.attempts:>5}  {error}"
        )


@events_app.command("show")
def show_command(
    event_id: Annotated[int, typer.Argument(metavar="ID", help="The event's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One event with its payload, attempts and last error."""
    event = _run(lambda db: get_event(db, event_id))
    if event is None:
        fail(N_("no event with id {n}").format(n=event_id), 1)
    if as_json:
        typer.echo(orjson.dumps(event.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(_render(event))


@events_app.command("retry")
def retry_command(
    ids: Annotated[
        list[int] | None, typer.Option("--id", help="A failed event to retry (repeatable).")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Retry every failed event.")] = False,
) -> None:
    """Put failed events back in the queue (attempts reset); the worker processes them."""
    if bool(ids) == failed:
        fail(N_("say which events: --id N (repeatable) or --failed"))
    wanted = sorted(set(ids or []))

    async def requeue(db: Database) -> list[int]:
        if failed:
            return await retry_all_failed(db)
        return await retry_events(db, wanted)

    queued = _run(requeue)
    _ = cli_gettext()
    skipped = [i for i in wanted if i not in queued]
    if queued:
        shown = ", ".join(str(i) for i in queued[:20]) + (" …" if len(queued) > 20 else "")
        typer.echo(_("Queued again: {n} event(s) ({ids}).").format(n=len(queued), ids=shown))
    if skipped:
        typer.echo(
            _("Not failed, left alone: {ids} (unknown ids, or not in the failed state).").format(
                ids=", ".join(str(i) for i in skipped)
            ),
            err=True,
        )
    if not queued:
        if failed:
            typer.echo(_("No failed events."))
            return
        raise typer.Exit(1)


@events_app.command("prune")
def prune_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
) -> None:
    """Delete done and ignored events older than AMOSYNC_EVENT_RETENTION_DAYS now (the
    worker does it hourly); failed and pending events are kept."""
    settings = load_settings()
    retention = timedelta(days=settings.event_retention_days)
    result: Pruned = _run(lambda db: prune(db, retention, dry_run=dry_run))
    _ = cli_gettext()
    said = (
        _(
            "Would delete {n} done/ignored event(s) older than {days} days (before {time}) "
            "and {calls} API call log row(s) older than 2 days. Failed and pending events "
            "are kept."
        )
        if dry_run
        else _(
            "Deleted {n} done/ignored event(s) older than {days} days (before {time}) "
            "and {calls} API call log row(s) older than 2 days. Failed and pending events "
            "are kept."
        )
    )
    typer.echo(
        said.format(
            n=result.events,
            days=f"{settings.event_retention_days:g}",
            time=local_when(result.cutoff),
            calls=result.api_requests,
        )
    )


def _render(e: EventView) -> str:
    _, lang = cli_gettext(), cli_language_now()
    rows = [
        ("ID", str(e.id)),
        (_("Received"), local_when(e.received_at)),
        (_("Source"), _(e.source)),
        (_("Entity"), f"{_(e.entity)} {e.entity_id if e.entity_id is not None else '—'}"),
        (_("Action"), _(e.action)),
        (_("Status"), _(e.status)),
        (_("Attempts"), str(e.attempts)),
        (_("Next try"), local_when(e.available_at) if e.status == "pending" else "—"),
        (_("Processed"), local_when(e.processed_at) if e.processed_at else "—"),
        (_("Last error"), translate(e.last_error, lang) if e.last_error else "—"),
    ]
    width = max(len(k) for k, _v in rows)
    text = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    payload = orjson.dumps(e.payload, option=orjson.OPT_INDENT_2).decode()
    payload_at = _("Payload")
    return f"{text}\n{payload_at}:\n{payload}"


def _run(work: Callable[[Database], Awaitable[T]]) -> T:
    settings = load_settings()

    async def main() -> T:
        db = Database.open(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except SQLAlchemyError as exc:
        problem = N_("cannot read {url}: {error} (is it migrated? run `amosync migrate`)")
        fail(problem.format(url=redacted(settings.database_url), error=str(exc).splitlines()[0]), 1)
