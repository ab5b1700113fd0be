"""`amosync webhooks register|list|remove`: the account's webhook subscriptions.

Secrets never reach the terminal or the logs: every URL is printed through `mask_url`,
which cuts our secret (and anything secret-looking in other integrations' URLs) to its
first 4 characters. `remove --id` removes a subscription whose full URL is not shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.client import AmoClient
from amosync.amocrm.webhooks import (
    SUBSCRIBED_SETTINGS,
    Subscription,
    check_destination,
    list_subscriptions,
    mask_url,
    our_destination,
    subscribe,
    unsubscribe,
)
from amosync.cli.common import fail, load_settings
from amosync.db.database import Database
from amosync.db.urls import redacted
from amosync.errors import AmoCRMError
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext, cli_language_now
from amosync.l10n.phrases import translate
from amosync.services import build_client
from amosync.settings import Settings
from amosync.worker.subscription import assess, save_subscription_state

T = TypeVar("T")

webhooks_app = typer.Typer(
    help="Subscribe amoCRM to send webhooks to amosync, list and remove subscriptions.",
    no_args_is_help=True,
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Webhook URL. Default: AMOSYNC_PUBLIC_URL + /amocrm/ + AMOSYNC_WEBHOOK_SECRET.",
    ),
]


@webhooks_app.command("register")
def register(
    url: UrlOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Register even when the URL does not carry our webhook secret."
        ),
    ] = False,
) -> None:
    """Subscribe the URL to deal, contact and company events (re-enables a disabled one)."""
    settings = load_settings()
    secret = settings.webhook_secret_text
    if secret is None:
        fail(
            N_(
                "set AMOSYNC_WEBHOOK_SECRET first (for example `openssl rand -hex 16`) and "
                "restart amosync, so the webhook URL cannot be guessed"
            )
        )
    target = url.strip() if url else our_destination(settings)
    if target is None:
        fail(N_("set AMOSYNC_PUBLIC_URL (the public HTTPS address of amosync) or pass --url"))
    verdict = check_destination(target, secret)
    if verdict.error:
        fail(verdict.error)
    _, lang = cli_gettext(), cli_language_now()
    if verdict.mismatch:
        if not force:
            fail(
                N_("{problem}. Pass --force to register it anyway.").format(
                    problem=verdict.mismatch
                )
            )
        typer.echo(_("warning: {what}").format(what=translate(verdict.mismatch, lang)), err=True)
    ours = our_destination(settings)
    if ours is not None and target != ours and not verdict.mismatch:
        note = _("note: this is not AMOSYNC_PUBLIC_URL; `doctor` and /health watch only {url}")
        typer.echo(note.format(url=mask_url(ours, secret)), err=True)
    before, after = _run(settings, lambda c, e: _register(settings, c, e, target))
    shown = mask_url(target, secret)
    if not before:
        said = _("✓ subscribed {url} to {n} events (id {id})")
        typer.echo(said.format(url=shown, n=len(after.settings), id=after.id))
    elif before[0].disabled:
        said = _("✓ re-enabled {url} (amoCRM had disabled it after failed deliveries)")
        typer.echo(said.format(url=shown))
    else:
        said = _("✓ already subscribed {url}; events updated ({n})")
        typer.echo(said.format(url=shown, n=len(after.settings)))
    if after.disabled:
        fail(N_("amoCRM still reports the subscription as disabled"), 1)


async def _register(
    settings: Settings, client: AmoClient, db: Database, target: str
) -> tuple[list[Subscription], Subscription]:
    before = await list_subscriptions(client, target)
    after = await subscribe(client, target, SUBSCRIBED_SETTINGS)
    await _remember(settings, db, target, [after])
    return before, after


@webhooks_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every subscription of the account: id, URL (secrets masked), enabled or disabled, ours."""
    settings = load_settings()
    subscriptions = _run(settings, lambda c, e: _list(settings, c, e))
    ours = our_destination(settings)
    secret = settings.webhook_secret_text
    rows = [_row(s, ours, secret) for s in subscriptions]
    if as_json:
        typer.echo(orjson.dumps({"webhooks": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    _ = cli_gettext()
    if not rows:
        typer.echo(_("no webhook subscriptions in this account"))
        return
    for row in rows:
        state = _("DISABLED") if row["disabled"] else _("enabled")
        mark = "  ← amosync" if row["ours"] else ""
        typer.echo(f"{row['id']!s:>10}  {state:<8}  {row['destination']}{mark}")
        if row["ours"] and row["missing_settings"]:
            missing = _("missing events: {settings}")
            typer.echo(f"{'':>10}  " + missing.format(settings=", ".join(row["missing_settings"])))


async def _list(settings: Settings, client: AmoClient, db: Database) -> list[Subscription]:
    subscriptions = await list_subscriptions(client)
    ours = our_destination(settings)
    if ours is not None:
        await _remember(settings, db, ours, subscriptions)
    return subscriptions


def _row(s: Subscription, ours: str | None, secret: str | None) -> dict[str, Any]:
    is_ours = ours is not None and s.destination == ours
    return {
        "id": s.id,
        "destination": mask_url(s.destination, secret),
        "disabled": s.disabled,
        "ours": is_ours,
        "settings": list(s.settings),
        "missing_settings": s.missing_settings() if is_ours else [],
    }


@webhooks_app.command("remove")
def remove(
    url: UrlOption = None,
    webhook_id: Annotated[
        int | None, typer.Option("--id", help="Remove the subscription with this id (`list`).")
    ] = None,
) -> None:
    """Unsubscribe a URL (default: ours); amoCRM stops sending to it at once."""
    settings = load_settings()
    if url and webhook_id is not None:
        fail(N_("give --url or --id, not both"))
    target = url.strip() if url else None
    if target is None and webhook_id is None:
        target = our_destination(settings)
        if target is None:
            fail(N_("set AMOSYNC_PUBLIC_URL and AMOSYNC_WEBHOOK_SECRET, or pass --url or --id"))
    removed, destination = _run(settings, lambda c, e: _remove(settings, c, e, target, webhook_id))
    secret = settings.webhook_secret_text
    if destination is None:
        fail(N_("no subscription with id {n}").format(n=webhook_id), 1)
    shown = mask_url(destination, secret)
    if not removed:
        fail(N_("{url} is not subscribed: nothing removed").format(url=shown), 1)
    _ = cli_gettext()
    typer.echo(_("✓ removed {url}").format(url=shown))


async def _remove(
    settings: Settings,
    client: AmoClient,
    db: Database,
    target: str | None,
    webhook_id: int | None,
) -> tuple[bool, str | None]:
    if target is None:
        found = [s for s in await list_subscriptions(client) if s.id == webhook_id]
        if not found:
            return False, None
        target = found[0].destination
    removed = await unsubscribe(client, target)
    if target == our_destination(settings):
        await _remember(settings, db, target, [])
    return removed, target


async def _remember(
    settings: Settings, db: Database, destination: str, subscriptions: list[Subscription]
) -> None:
    """Store what we just learned about our subscription, so /health is right at once."""
    if destination != our_destination(settings):
        return
    secret = settings.webhook_secret_text
    state = assess(subscriptions, destination, secret, datetime.now(UTC))
    await save_subscription_state(db, state)


def _run(settings: Settings, work: Callable[[AmoClient, Database], Awaitable[T]]) -> T:
    """Run `work` with a client and the database, turning failures into exit code 1."""
    if settings.api_base_url is None:
        fail(N_("set AMOSYNC_AMOCRM_SUBDOMAIN (or AMOSYNC_AMOCRM_BASE_URL) first"))

    async def main() -> T:
        async with _connected(settings) as (client, db):
            return await work(client, db)

    try:
        return asyncio.run(main())
    except AmoCRMError as exc:
        fail(str(exc), 1)
    except SQLAlchemyError as exc:
        problem = N_(
            "database {url} is needed (shared rate limit, subscription state): {error}; "
            "run `amosync migrate`"
        )
        error = str(exc).splitlines()[0][:200]
        fail(problem.format(url=redacted(settings.database_url), error=error), 1)


@asynccontextmanager
async def _connected(settings: Settings) -> AsyncIterator[tuple[AmoClient, Database]]:
    db = Database.open(settings.database_url)
    client = build_client(settings, db, purpose="check")
    try:
        yield client, db
    finally:
        await client.aclose()
        await db.dispose()
