"""`amosync auth`: connect amoCRM through OAuth 2.0 (an external integration).

    amosync auth url              print the consent link (open it as an account admin)
    amosync auth exchange CODE    trade the code from the redirect for tokens, store them
    amosync auth login            print the link, wait for the redirect, exchange (one step)
    amosync auth status           which token is used and when it expires

Tokens go to the database (`amocrm_oauth_tokens`), never to files or the terminal: these
commands print expiry dates only.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.token_endpoint import GrantRefused
from amosync.amocrm.token_info import (
    TokenExpiry,
    configured_kind,
    missing_token_hint,
    token_choice,
    token_expiry,
)
from amosync.amocrm.token_store import StoredTokens, TokenStore
from amosync.cli.common import fail, load_settings
from amosync.cli.oauth_callback import (
    PAGE_DENIED,
    PAGE_FAILED,
    PAGE_GRANTED,
    Callback,
    Outcome,
    wait_for_callback,
)
from amosync.cli.ports import bind_or_exit
from amosync.db.database import Database
from amosync.db.urls import redacted
from amosync.errors import RetryLater
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext, cli_language_now
from amosync.l10n.phrases import translate
from amosync.l10n.zone import local_when
from amosync.oauth_setup import missing_oauth_settings, token_endpoint
from amosync.settings import Settings

auth_app = typer.Typer(
    help="Connect amoCRM with OAuth (instead of a long-lived token).", no_args_is_help=True
)


def consent_url(settings: Settings, client_id: str, state: str) -> str:
    """amoCRM's consent page (Kommo's for accounts on *.kommo.com)."""
    host = urlsplit(settings.api_base_url or "").hostname or ""
    site = "https://www.kommo.com" if host.endswith(".kommo.com") else "https://www.amocrm.ru"
    if host in {"127.0.0.1", "localhost", "::1"} and settings.api_base_url:
        # amoCRM on this machine is the fake (`amosync dev fake-amocrm`): its own consent page.
        site = settings.api_base_url.rstrip("/")
    query = urlencode({"client_id": client_id, "state": state, "mode": "post_message"})
    return f"{site}/oauth?{query}"


@auth_app.command("url")
def url(
    state: Annotated[
        str | None, typer.Option(help="The state to put in the link (default: random).")
    ] = None,
) -> None:
    """Print the consent link; after "Allow", amoCRM redirects with ?code=… (valid 20 min)."""
    settings = load_settings()
    if not settings.amocrm_client_id:
        fail(N_("set AMOSYNC_AMOCRM_CLIENT_ID (the integration ID of your external integration)"))
    typer.echo(consent_url(settings, settings.amocrm_client_id, state or secrets.token_urlsafe(16)))
    _ = cli_gettext()
    redirect = settings.amocrm_redirect_uri or _("your redirect URI")
    said = _(
        "Open the link as an account admin and allow access. amoCRM then redirects to "
        "{redirect}?code=…; run `amosync auth exchange CODE` within 20 minutes."
    )
    typer.echo(said.format(redirect=redirect), err=True)


@auth_app.command("exchange")
def exchange(
    code: Annotated[
        str, typer.Argument(help="The `code` from the redirect (or the whole redirect URL).")
    ],
) -> None:
    """Trade an authorization code for tokens and store them in the database."""
    settings = _oauth_settings()
    try:
        stored = asyncio.run(_exchange(settings, _code_from(code)))
    except CommandFailed as exc:
        fail(exc.message, exc.code)
    typer.echo(_stored_line(stored))


@auth_app.command("login")
def login(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for amoCRM's redirect.", min=1)
    ] = 300.0,
    port: Annotated[
        int | None,
        typer.Option(help="Port to listen on (default: the redirect URI's).", min=1, max=65535),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (default: loopback for a localhost redirect "
            "URI, else all addresses)."
        ),
    ] = None,
) -> None:
    """Print the consent link, wait once for the redirect on the redirect URI, exchange."""
    settings = _oauth_settings()
    # _oauth_settings checked both
    assert settings.amocrm_client_id
    assert settings.amocrm_redirect_uri
    redirect = urlsplit(settings.amocrm_redirect_uri)
    listen_host = host or (
        "127.0.0.1" if redirect.hostname in {"localhost", "127.0.0.1", "::1"} else "0.0.0.0"  # noqa: S104
    )
    listen_port = port or redirect.port or (443 if redirect.scheme == "https" else 80)
    # Bound before the link is shown: a busy port must not cost the operator a consent.
    sock = bind_or_exit(
        listen_host, listen_port, "--port (or the port in AMOSYNC_AMOCRM_REDIRECT_URI)"
    )
    state = secrets.token_urlsafe(16)
    typer.echo(consent_url(settings, settings.amocrm_client_id, state))
    _ = cli_gettext()
    said = _(
        "Open the link as an account admin and allow access; waiting up to {n} s for the "
        "redirect on {address} (plain HTTP: with an https redirect URI, your proxy must "
        "forward it here)."
    )
    address = f"{listen_host}:{listen_port}{redirect.path or '/'}"
    typer.echo(said.format(n=f"{timeout:.0f}", address=address), err=True)

    async def handle(callback: Callback) -> Outcome:
        try:
            stored = await _exchange(settings, _accepted_code(settings, callback))
        except CommandFailed as exc:
            page = PAGE_DENIED if callback.error else PAGE_FAILED.format(reason=exc.message)
            return Outcome(False, exc.message, page)
        return Outcome(True, _stored_line(stored), PAGE_GRANTED)

    try:
        outcome = asyncio.run(
            wait_for_callback(
                sock, redirect.path or "/", state, handle, within=timeout, lang=cli_language_now()
            )
        )
    except TimeoutError:
        problem = N_("no redirect from amoCRM within {n} s; run `amosync auth login` again")
        fail(problem.format(n=f"{timeout:.0f}"), 1)
    finally:
        sock.close()
    if not outcome.ok:
        fail(outcome.message, 1)
    typer.echo(translate(outcome.message, cli_language_now()))


@auth_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Which token amosync uses and when it expires; exit 1 when there is none or it expired."""
    settings = load_settings()
    try:
        expiry, row = asyncio.run(_status(settings))
    except SQLAlchemyError as exc:
        problem = N_("cannot read {url}: {error}")
        fail(problem.format(url=redacted(settings.database_url), error=str(exc).splitlines()[0]), 1)
    choice = token_choice(settings)
    if as_json:
        data: dict[str, object] = {
            "token": expiry.as_json(settings) if expiry else None,
            "uses": choice.kind,
            "uses_detail": choice.statement,
            "configuration_warning": choice.warning,
        }
        if row is not None:
            data["last_refresh_at"] = row.updated_at.isoformat(timespec="seconds")
            data["version"] = row.version
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(_status_text(settings, expiry, row))
    if expiry is None or expiry.is_expired():
        raise typer.Exit(1)


def _status_text(settings: Settings, expiry: TokenExpiry | None, row: StoredTokens | None) -> str:
    """`auth status` for a person, in AMOSYNC_LANG, times in AMOSYNC_TIMEZONE."""
    _, lang = cli_gettext(), cli_language_now()
    choice = token_choice(settings)
    uses = (_("Uses"), translate(choice.statement, lang))
    warning = _("WARNING")
    if expiry is None:
        lines = [f"{uses[0]}: {uses[1]}"]
        if choice.warning:
            lines.append(f"{warning}: {translate(choice.warning, lang)}")
        return "\n".join([*lines, translate(missing_token_hint(settings), lang)])
    kind = _("long-lived token") if expiry.kind == "long_lived" else "OAuth"
    rows = [(_("Token"), kind), uses]
    if expiry.access_expires_at is not None:
        rows.append(
            (_("Access token"), _("expires {time}").format(time=_when(expiry.access_expires_at)))
        )
    if row is not None:
        refreshed = _("{time} (rotation {n})").format(time=_when(row.updated_at), n=row.version)
        rows.append((_("Last refresh"), refreshed))
    if expiry.refresh_expires_at is not None:
        dies = _("dies {time} unless used").format(time=_when(expiry.refresh_expires_at))
        rows.append((_("Refresh token"), dies))
    width = max(len(k) for k, _v in rows) + 1
    lines = [f"{k + ':':<{width}} {v}" for k, v in rows]
    if choice.warning:
        lines.insert(2, f"{warning}: {translate(choice.warning, lang)}")
    if expiry.needs_warning(settings):
        lines.append(f"{warning}: {translate(expiry.describe(), lang)}")
    return "\n".join(lines)


class CommandFailed(Exception):
    """A failure to report with `fail` (or on the `auth login` browser page)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _oauth_settings() -> Settings:
    settings = load_settings()
    missing = missing_oauth_settings(settings)
    if missing:
        fail(N_("OAuth needs {settings}").format(settings=", ".join(missing)))
    return settings


def _code_from(value: str) -> str:
    """The code itself, also when the whole redirect URL (or its query) was pasted."""
    value = value.strip()
    if "code=" in value or "error=" in value:
        query = parse_qs(urlsplit(value).query or value.lstrip("?"))
        if query.get("error"):
            problem = N_("amoCRM did not grant access ({error}); run `amosync auth url`")
            fail(problem.format(error=query["error"][0]), 1)
        if query.get("code"):
            return query["code"][0]
    if not value:
        fail(N_("the code is empty"))
    return value


def _accepted_code(settings: Settings, callback: Callback) -> str:
    if callback.error:
        problem = N_("amoCRM did not grant access ({error}); run `amosync auth login` again")
        raise CommandFailed(problem.format(error=callback.error), 1)
    expected = urlsplit(settings.api_base_url or "").hostname
    if callback.referer and expected and callback.referer != expected:
        problem = N_(
            "the consent was given for {given}, but amosync is configured for {expected} "
            "(AMOSYNC_AMOCRM_SUBDOMAIN / AMOSYNC_AMOCRM_BASE_URL)"
        )
        raise CommandFailed(problem.format(given=callback.referer, expected=expected), 1)
    if not callback.code:
        raise CommandFailed(N_("the redirect carried no code; run `amosync auth login` again"), 1)
    return callback.code


async def _exchange(settings: Settings, code: str) -> StoredTokens:
    endpoint = token_endpoint(settings)
    # _oauth_settings checked these
    assert endpoint is not None
    assert settings.api_base_url
    db = Database.open(settings.database_url)
    store = TokenStore(db, settings.api_base_url)
    try:
        # A code is single-use: make sure the table is there before spending it.
        await _database_ready(settings, store)
        try:
            grant = await endpoint.exchange_code(code)
        except GrantRefused as exc:
            raise CommandFailed(str(exc), 1) from None
        except RetryLater as exc:
            problem = N_("{error}; nothing was stored, try again with a new code")
            raise CommandFailed(problem.format(error=exc), 1) from None
        try:
            return await store.save(grant)
        except SQLAlchemyError as exc:
            problem = N_(
                "tokens received but not stored in {url} ({error}); get a new code and try again"
            )
            url = redacted(settings.database_url)
            raise CommandFailed(problem.format(url=url, error=_first_line(exc)), 1) from None
    finally:
        await db.dispose()


async def _database_ready(settings: Settings, store: TokenStore) -> None:
    try:
        await store.load()
    except SQLAlchemyError as exc:
        problem = N_("cannot use {url} ({error}); run `amosync migrate` first")
        url = redacted(settings.database_url)
        raise CommandFailed(problem.format(url=url, error=_first_line(exc)), 1) from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


async def _status(settings: Settings) -> tuple[TokenExpiry | None, StoredTokens | None]:
    db = Database.open(settings.database_url)
    try:
        expiry = await token_expiry(settings, db)
        row = None
        if configured_kind(settings) != "long_lived" and settings.api_base_url:
            row = await TokenStore(db, settings.api_base_url).load()
        return expiry, row
    finally:
        await db.dispose()


def _stored_line(stored: StoredTokens) -> str:
    _ = cli_gettext()
    said = _(
        "OAuth tokens stored for {account}: access token expires {time}, refresh token valid "
        "until {until} (amosync refreshes both on its own)"
    )
    return said.format(
        account=stored.account,
        time=_when(stored.expires_at),
        until=_when(stored.refresh_expires_at),
    )


def _when(value: datetime | None) -> str:
    return local_when(value)  # AMOSYNC_TIMEZONE; `—` when unknown
