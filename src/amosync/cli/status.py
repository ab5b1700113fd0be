"""`amosync status`: deals stored, events by status, backlog, API spend, token, verification."""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.shared_limit import MAX_BLOCK, SharedPause, current_pause
from amosync.amocrm.token_info import (
    TokenExpiry,
    expiry_check,
    missing_token_hint,
    token_expiry,
)
from amosync.catchup.summary import catchup_line, spend_line
from amosync.catchup.verify_select import Coverage, coverage
from amosync.catchup.verify_state import verify_line
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
        stats, expiry, covered, pause = asyncio.run(_collect(settings))
    except SQLAlchemyError as exc:
        fail(f"cannot read {redacted(settings.database_url)}: {str(exc).splitlines()[0]}", 1)
    if as_json:
        data = stats.as_json()
        data["token"] = expiry.as_json(settings) if expiry else None
        data["api_budget_per_hour"] = settings.api_budget_per_hour
        data["verify_calls_per_hour"] = settings.verify_calls_per_hour
        data["verify_coverage"] = {k: c.as_json() for k, c in covered.items()}
        data["api_pause"] = pause.as_json() if pause else None
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    text = render(
        stats, token_line(settings, expiry), settings.api_budget_per_hour, pause_line(pause)
    )
    typer.echo(text + "\n" + verification_rows(stats, covered, settings.verify_calls_per_hour))


async def _collect(
    settings: Settings,
) -> tuple[SyncStats, TokenExpiry | None, dict[str, Coverage], SharedPause | None]:
    engine = create_service_engine(settings.database_url)
    try:
        pause = await current_pause(
            engine,
            max_pause=settings.max_retry_after,
            max_block=max(MAX_BLOCK, settings.ip_block_cooldown),
        )
        stats = await collect_stats(engine)
        expiry = await token_expiry(settings, engine)
        return stats, expiry, await coverage(engine), pause
    finally:
        await engine.dispose()


def pause_line(pause: SharedPause | None) -> str:
    """The `amoCRM calls` row: whether every process is holding its calls, and until when."""
    if pause is None:
        return "not paused"
    why = "paused after a 429" if pause.kind == "rate_limited" else "blocked after a 403"
    until = pause.until.isoformat(timespec="seconds")
    return f"{why} until {until} ({age(pause.seconds_left())} left)"


def token_line(settings: Settings, expiry: TokenExpiry | None) -> str:
    """The `amoCRM token` row: expiry, with a warning or the fix when it matters."""
    if expiry is None:
        return missing_token_hint(settings)
    check = expiry_check(settings, expiry)
    return check[1] if check else f"{expiry.kind.replace('_', '-')}, expiry unknown"


def render(
    s: SyncStats,
    token: str | None = None,
    budget: int | None = None,
    pause: str | None = None,
) -> str:
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
        *([("amoCRM calls", pause)] if pause is not None else []),
        ("Last catch-up", catchup_line(s.last_catchup)),
        ("Workers", workers),
    ]
    if token is not None:
        rows.append(("amoCRM token", token))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def verification_rows(s: SyncStats, covered: dict[str, Coverage], per_hour: int) -> str:
    """The verification rows, aligned like `render`'s (appended after them)."""
    parts = []
    for entity, c in covered.items():
        oldest = c.oldest_verified_at
        since = f", oldest {oldest.isoformat(timespec='seconds')}" if oldest else ""
        parts.append(f"{entity} {c.verified} of {c.stored}{since}")
    background = f"{per_hour} calls/h" if per_hour else "off (AMOSYNC_VERIFY_CALLS_PER_HOUR=0)"
    rows = [
        ("Last verification", verify_line(s.last_verify)),
        ("Verified", f"{'; '.join(parts)}; background {background}"),
    ]
    return "\n".join(f"{k:<24}  {v}" for k, v in rows)
