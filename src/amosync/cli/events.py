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
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.cli.common import fail, load_settings
from amosync.db.engine import create_service_engine
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
        fail(f"--status: unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        fail(f"--limit: must be between 1 and {MAX_LIST_LIMIT}")
    events = _run(lambda engine: list_events(engine, status=status, limit=limit))
    if as_json:
        typer.echo(orjson.dumps([e.as_json() for e in events]).decode())
        return
    if not events:
        typer.echo("No events" + (f" with status {status}." if status else "."))
        return
    header = f"{'ID':>8}  {'RECEIVED':<19}  {'ENTITY':<10} {'ACTION':<11} {'ENTITY ID':>10}  "
    typer.echo(header + f"{'STATUS':<8} {'TRIES':>5}  ERROR")
    for e in events:
        received = e.received_at.strftime("%Y-%m-%d %H:%M:%S")
        entity_id = "" if e.entity_id is None else str(e.entity_id)
        error = (e.last_error or "").replace("\n", " ")[:60]
        typer.echo(
            f"{e.id:>8}  {received:<19}  {e.entity:<10} {e.action:<11} {entity_id:>10}  "
            f"{e.status:<8} {e.attempts:>5}  {error}"
        )


@events_app.command("show")
def show_command(
    event_id: Annotated[int, typer.Argument(metavar="ID", help="The event's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One event with its payload, attempts and last error."""
    event = _run(lambda engine: get_event(engine, event_id))
    if event is None:
        fail(f"no event with id {event_id}", 1)
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
        fail("say which events: --id N (repeatable) or --failed")
    wanted = sorted(set(ids or []))

    async def requeue(engine: AsyncEngine) -> list[int]:
        if failed:
            return await retry_all_failed(engine)
        return await retry_events(engine, wanted)

    queued = _run(requeue)
    skipped = [i for i in wanted if i not in queued]
    if queued:
        shown = ", ".join(str(i) for i in queued[:20]) + (" …" if len(queued) > 20 else "")
        typer.echo(f"Queued again: {len(queued)} event(s) ({shown}).")
    if skipped:
        typer.echo(
            f"Not failed, left alone: {', '.join(str(i) for i in skipped)} "
            "(unknown ids, or not in the failed state).",
            err=True,
        )
    if not queued:
        if failed:
            typer.echo("No failed events.")
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
    result: Pruned = _run(lambda engine: prune(engine, retention, dry_run=dry_run))
    verb = "Would delete" if dry_run else "Deleted"
    typer.echo(
        f"{verb} {result.events} done/ignored event(s) older than "
        f"{settings.event_retention_days:g} days (before "
        f"{result.cutoff.isoformat(timespec='seconds')}) and {result.api_requests} API call "
        "log row(s) older than 2 days. Failed and pending events are kept."
    )


def _render(e: EventView) -> str:
    rows = [
        ("ID", str(e.id)),
        ("Received", e.received_at.isoformat(timespec="seconds")),
        ("Source", e.source),
        ("Entity", f"{e.entity} {e.entity_id if e.entity_id is not None else '—'}"),
        ("Action", e.action),
        ("Status", e.status),
        ("Attempts", str(e.attempts)),
        (
            "Next try",
            e.available_at.isoformat(timespec="seconds") if e.status == "pending" else "—",
        ),
        ("Processed", e.processed_at.isoformat(timespec="seconds") if e.processed_at else "—"),
        ("Last error", e.last_error or "—"),
    ]
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    payload = orjson.dumps(e.payload, option=orjson.OPT_INDENT_2).decode()
    return f"{text}\nPayload:\n{payload}"


def _run(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    settings = load_settings()

    async def main() -> T:
        engine = create_service_engine(settings.database_url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except SQLAlchemyError as exc:
        fail(
            f"cannot read {redacted(settings.database_url)}: {str(exc).splitlines()[0]} "
            "(is it migrated? run `amosync migrate`)",
            1,
        )
