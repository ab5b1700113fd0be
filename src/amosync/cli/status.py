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
from amosync.db.database import Database
from amosync.db.urls import redacted
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext, cli_language_now
from amosync.l10n.phrases import translate
from amosync.l10n.zone import local_when
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
        problem = N_("cannot read {url}: {error}")
        fail(problem.format(url=redacted(settings.database_url), error=str(exc).splitlines()[0]), 1)
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
    db = Database.open(settings.database_url)
    try:
        pause = await current_pause(
            db,
            max_pause=settings.max_retry_after,
            max_block=max(MAX_BLOCK, settings.ip_block_cooldown),
        )
        stats = await collect_stats(db)
        expiry = await token_expiry(settings, db)
        return stats, expiry, await coverage(db), pause
    finally:
        await db.dispose()


def pause_line(pause: SharedPause | None) -> str:
    """The `amoCRM calls` row: whether every process is holding its calls, and until when."""
    _ = cli_gettext()
    if pause is None:
        return _("not paused")
    why = (
        _("paused after a 429 until {time} ({age} left)")
        if pause.kind == "rate_limited"
        else _("blocked after a 403 until {time} ({age} left)")
    )
    return why.format(time=local_when(pause.until), age=_tr(age(pause.seconds_left())))


def token_line(settings: Settings, expiry: TokenExpiry | None) -> str:
    """The `amoCRM token` row: expiry, with a warning or the fix when it matters."""
    if expiry is None:
        return _tr(missing_token_hint(settings))
    check = expiry_check(settings, expiry)
    if check:
        return _tr(check[1])
    _ = cli_gettext()
    return _("{kind}, expiry unknown").format(kind=_(expiry.kind.replace("_", "-")))


def render(
    s: SyncStats,
    token: str | None = None,
    budget: int | None = None,
    pause: str | None = None,
) -> str:
    _ = cli_gettext()
    e = s.events_by_status
    workers = ", ".join(f"{w.id} ({_(w.state)})" for w in s.workers) or _("none in the last 5 min")
    rows = [
        (
            _("Deals stored"),
            _("{n} ({deleted} deleted)").format(n=s.deals, deleted=s.deals_deleted),
        ),
        (_("Deals with a RentProg ID"), str(s.deals_with_rentprog_id)),
        (_("Contacts / companies"), f"{s.contacts} / {s.companies}"),
        (
            _("Webhook events"),
            _("{total}: {done} done, {pending} pending, {failed} failed, {ignored} ignored").format(
                total=sum(e.values()),
                done=e["done"],
                pending=e["pending"],
                failed=e["failed"],
                ignored=e["ignored"],
            ),
        ),
        (
            _("Backlog"),
            _("{n} pending, oldest {age}").format(
                n=s.backlog, age=_tr(age(s.oldest_pending_age_seconds))
            ),
        ),
        (
            _("Last webhook from amoCRM"),
            local_when(s.last_webhook_at) if s.last_webhook_at else _("never"),
        ),
        (
            _("API requests, last hour"),
            _tr(spend_line(s.api_requests_by_purpose_last_hour, budget)),
        ),
        *([(_("amoCRM calls"), pause)] if pause is not None else []),
        (_("Last catch-up"), _tr(catchup_line(s.last_catchup))),
        (_("Workers"), workers),
    ]
    if token is not None:
        rows.append((_("amoCRM token"), token))
    return "\n".join(f"{k:<{_width()}}  {v}" for k, v in rows)


def verification_rows(s: SyncStats, covered: dict[str, Coverage], per_hour: int) -> str:
    """The verification rows, aligned like `render`'s (appended after them)."""
    _ = cli_gettext()
    parts = []
    for entity, c in covered.items():
        oldest = c.oldest_verified_at
        since = _(", oldest {time}").format(time=local_when(oldest)) if oldest else ""
        parts.append(
            _("{entity} {verified} of {stored}").format(
                entity=_(entity), verified=c.verified, stored=c.stored
            )
            + since
        )
    background = (
        _("{n} calls/h").format(n=per_hour)
        if per_hour
        else _("off (AMOSYNC_VERIFY_CALLS_PER_HOUR=0)")
    )
    rows = [
        (_("Last verification"), _tr(verify_line(s.last_verify))),
        (
            _("Verified"),
            _("{parts}; background {background}").format(
                parts="; ".join(parts), background=background
            ),
        ),
    ]
    return "\n".join(f"{k:<{_width()}}  {v}" for k, v in rows)


LABELS = (
    N_("Deals stored"),
    N_("Deals with a RentProg ID"),
    N_("Contacts / companies"),
    N_("Webhook events"),
    N_("Backlog"),
    N_("Last webhook from amoCRM"),
    N_("API requests, last hour"),
    N_("amoCRM calls"),
    N_("Last catch-up"),
    N_("Workers"),
    N_("amoCRM token"),
    N_("Last verification"),
    N_("Verified"),
)


def _width() -> int:
    """One column for `render`'s rows and the verification rows, in any language."""
    _ = cli_gettext()
    return max(len(_(label)) for label in LABELS)


def _tr(text: str) -> str:
    """A line composed in English elsewhere, in AMOSYNC_LANG (amosync/l10n/phrases.py)."""
    return translate(text, cli_language_now())
