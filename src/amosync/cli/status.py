"""`amosync status`: what the seed's progress script printed, and more."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.token_info import (
    TokenExpiry,
    expiry_check,
    missing_token_hint,
    token_expiry,
)
from amosync.catchup.summary import catchup_line, spend_line
from amosync.cli.common import fail, load_settings
from amosync.core.humanize import age
from amosync.db.engine import create_service_engine
from amosync.db.urls import redacted
from amosync.settings import Settings
from amosync.stats import SyncStats, collect_stats


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Deals stored, RentProg IDs, events by status, backlog, API spend."""
    settings = load_settings()
    try:
        stats, expiry = asyncio.run(_collect(settings))
    except SQLAlchemyError as exc:
        fail(f"cannot read {redacted(settings.database_url)}: {str(exc).splitlines()[0]}", 1)
    if as_json:
        data = stats.as_json()
        data["token"] = expiry.as_json(settings) if expiry else None
        data["api_budget_per_hour"] = settings.api_budget_per_hour
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo(render(stats, token_line(settings, expiry), settings.api_budget_per_hour))


async def _collect(settings: Settings) -> tuple[SyncStats, TokenExpiry | None]:
    engine = create_service_engine(settings.database_url)
    try:
        return await collect_stats(engine), await token_expiry(settings, engine)
    finally:
        await engine.dispose()


def token_line(settings: Settings, expiry: TokenExpiry | None) -> str:
    """The `amoCRM token` row: expiry, with a warning or the fix when it matters."""
    if expiry is None:
        return missing_token_hint(settings)
    check = expiry_check(settings, expiry)
    return check[1] if check else f"{expiry.kind.replace('_', '-')}, expiry unknown"


def render(s: SyncStats, token: str | None = None, budget: int | None = None) -> str:
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
        ("Backlog", f"{s.backlog} pending, oldest {age(s.oldest_pending_age_seconds)}"),
        (
            "Last webhook from amoCRM",
            s.last_webhook_at.isoformat(timespec="seconds") if s.last_webhook_at else "never",
        ),
        ("API requests, last hour", spend_line(s.api_requests_by_purpose_last_hour, budget)),
        ("Last catch-up", catchup_line(s.last_catchup)),
        ("Workers", workers),
    ]
    if token is not None:
        rows.append(("amoCRM token", token))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
