"""`amosync status`: what the seed's progress script printed, and more."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.cli.common import fail, load_settings
from amosync.db.engine import create_service_engine
from amosync.db.urls import redacted
from amosync.stats import SyncStats, collect_stats


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Deals stored, RentProg IDs, events by status, backlog, API spend."""
    settings = load_settings()
    try:
        stats = asyncio.run(_collect(settings.database_url))
    except SQLAlchemyError as exc:
        fail(f"cannot read {redacted(settings.database_url)}: {str(exc).splitlines()[0]}", 1)
    if as_json:
        typer.echo(orjson.dumps(stats.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(render(stats))


async def _collect(url: str) -> SyncStats:
    engine = create_service_engine(url)
    try:
        return await collect_stats(engine)
    finally:
        await engine.dispose()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def render(s: SyncStats) -> str:
    e = s.events_by_status
    workers = ", ".join(f"{w.id} ({w.state})" for w in s.workers) or "none in the last 5 min"
    rows = [
        ("Deals stored", f"{s.deals} ({s.deals_deleted} deleted)"),
        ("Deals with a RentProg ID", str(s.deals_with_rentprog_id)),
        ("Contacts / companies", f"{s.contacts} / {s.companies}"),
        (
            "Webhook events",
            f"{sum(e.values())}: {e['done']} done, {e['pending']} pending, "
            f"{e['failed']} failed, {e['ignored']} ignored",
        ),
        ("Backlog", f"{s.backlog} pending, oldest {_age(s.oldest_pending_age_seconds)}"),
        (
            "Last webhook",
            s.last_webhook_at.isoformat(timespec="seconds") if s.last_webhook_at else "never",
        ),
        ("API requests, last hour", str(s.api_requests_last_hour)),
        ("Workers", workers),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
