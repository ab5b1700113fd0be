"""Gather what `doctor` judges: the database, four amoCRM API calls, the service's /health.

Every probe catches its own failure into an `Outcome`, so one broken item never hides the
others. API probes after a refused token are skipped rather than failed three more times.
The API calls are recorded like any other (`purpose` = check); four calls in all.

Doctor never waits out a pause: a 429 pause in force (its own or another process's) is
reported as `paused`, and each API probe has an overall deadline (`_call_budget`), so the
command ends within about a minute whatever amoCRM or the database row says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.amocrm.token_info import token_expiry
from amosync.amocrm.webhooks import Subscription, list_subscriptions, our_destination
from amosync.db.database import Database
from amosync.db.migrate import current_revision, head_revision
from amosync.doctor.checks import ErrorKind, EventFacts, Facts, Outcome, ServiceAnswer
from amosync.errors import AmoCRMError, IPBlocked, RateLimited, ReauthRequired, RetryLater
from amosync.inbox.counts import failed_count
from amosync.inbox.store import last_webhook_at
from amosync.services import build_client
from amosync.settings import Settings
from amosync.settings_audit import unknown_variables
from amosync.worker.subscription import assess, save_subscription_state

T = TypeVar("T")

SERVICE_TIMEOUT = 5.0
# Longest doctor waits for a free rate-limit slot; a longer wait is a pause, reported.
MAX_SLOT_WAIT = 2.0
FIELDS_PATH = "/api/v4/leads/custom_fields"


def default_service_url(settings: Settings) -> str:
    """Where `serve` listens with these settings, as a URL this machine can call."""
    # A wildcard listen address is not one to call: use loopback instead.
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcard.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


async def gather(
    settings: Settings,
    service_url: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Facts:
    db = Database.open(settings.database_url)
    try:
        return await _gather(settings, db, service_url, transport)
    finally:
        await db.dispose()


async def _gather(
    settings: Settings,
    db: Database,
    service_url: str,
    transport: httpx.AsyncBaseTransport | None,
) -> Facts:
    now = datetime.now(UTC)
    head = head_revision()
    database: Outcome[bool]
    revision: Outcome[str | None]
    try:
        async with db.read() as conn:
            await conn.execute(text("SELECT 1"))
            at = await conn.run_sync(current_revision)
        database, revision = Outcome(True), Outcome(at)
    except SQLAlchemyError as exc:
        database = Outcome(error=_first_line(exc), kind="database")
        revision = Outcome.skipped("needs the database")
    db_ready = database.error is None and revision.value == head

    events: Outcome[EventFacts] = (
        await _events(db) if db_ready else Outcome.skipped("needs the migrated database")
    )
    token = await _token(settings, db, db_ready)
    account, subscriptions, fields = await _api_facts(settings, db, db_ready, transport)
    if db_ready and subscriptions.value is not None:
        await _remember(settings, db, subscriptions.value, now)
    users = await _users(settings, db, db_ready, transport, account)
    service = await _service(service_url)
    return Facts(
        now=now,
        database=database,
        revision=revision,
        head=head,
        account=account,
        token=token,
        subscriptions=subscriptions,
        service=service,
        events=events,
        lead_fields=fields,
        users=users,
        unknown_variables=unknown_variables(os.environ),
    )


async def _events(db: Database) -> Outcome[EventFacts]:
    try:
        async with db.read() as conn:
            last = await last_webhook_at(conn)  # from amoCRM: not rows amosync queued
            failed = await failed_count(conn)
    except SQLAlchemyError as exc:
        return Outcome(error=_first_line(exc), kind="database")
    return Outcome(EventFacts(last, failed))


async def _token(settings: Settings, db: Database, db_ready: bool) -> Outcome[Any]:
    if settings.amocrm_client_id and not db_ready:
        return Outcome.skipped("OAuth tokens live in the database, which is not ready")
    try:
        return Outcome(await token_expiry(settings, db))
    except SQLAlchemyError as exc:
        return Outcome(error=_first_line(exc), kind="database")


async def _api_facts(
    settings: Settings,
    db: Database,
    db_ready: bool,
    transport: httpx.AsyncBaseTransport | None,
) -> tuple[Outcome[dict[str, Any]], Outcome[list[Subscription]], Outcome[list[dict[str, Any]]]]:
    client = _client(settings, db, db_ready, transport)
    if isinstance(client, str):
        return Outcome.skipped(client), Outcome.skipped(client), Outcome.skipped(client)
    budget = _call_budget(settings)
    try:
        account: Outcome[dict[str, Any]] = await _call(client.get_json("/api/v4/account"), budget)
        if account.value is None and account.error is None:
            account = Outcome(error="GET /api/v4/account answered no content", kind="rejected")
        if account.kind in ("reauth", "ip_blocked", "paused", "unreachable", "database"):
            later = f"needs a working API connection (see token: {account.kind})"
            return account, Outcome.skipped(later), Outcome.skipped(later)
        subscriptions: Outcome[list[Subscription]] = (
            await _call(list_subscriptions(client, our_destination(settings)), budget)
            if our_destination(settings)
            else Outcome.skipped("needs AMOSYNC_PUBLIC_URL and AMOSYNC_WEBHOOK_SECRET")
        )
        fields = await _call(_lead_fields(client), budget)
        return account, subscriptions, fields
    finally:
        await client.aclose()


async def _users(
    settings: Settings,
    db: Database,
    db_ready: bool,
    transport: httpx.AsyncBaseTransport | None,
    account: Outcome[dict[str, Any]],
) -> Outcome[int]:
    """One `GET /api/v4/users?limit=1` (admin-only: a 403 there is no IP block)."""
    if account.error is not None:
        return Outcome.skipped("needs a working API connection")
    client = _client(settings, db, db_ready, transport)
    if isinstance(client, str):
        return Outcome.skipped(client)
    try:
        probe = client.get_json("/api/v4/users", [("limit", 1)], admin_only=True)
        answer: Outcome[Any] = await _call(probe, _call_budget(settings))
    finally:
        await client.aclose()
    if answer.error is not None:
        return Outcome(error=answer.error, kind=answer.kind)
    return Outcome(1 if answer.value else 0)


def _client(
    settings: Settings,
    db: Database,
    db_ready: bool,
    transport: httpx.AsyncBaseTransport | None,
) -> AmoClient | str:
    """The service's client (shared rate limit, call log, OAuth) when the database is ready;
    else, for a long-lived token, a plain one so the token can still be tested. A string
    says why there is no client."""
    if settings.api_base_url is None:
        return "needs AMOSYNC_AMOCRM_SUBDOMAIN"
    if db_ready:
        return build_client(
            settings, db, purpose="check", transport=transport, max_wait=MAX_SLOT_WAIT
        )
    token = settings.amocrm_long_lived_token
    if settings.amocrm_client_id or token is None:
        return "needs a token and, for OAuth, the migrated database"
    return AmoClient(
        settings.api_base_url,
        LongLivedToken(token.get_secret_value()),
        SlidingWindowLimiter(
            settings.api_rate_limit, max_pause=settings.max_retry_after, max_wait=MAX_SLOT_WAIT
        ),
        timeout=settings.api_timeout,
        transport=transport,
        max_answer_bytes=settings.api_max_answer_bytes,
        max_retry_after=settings.max_retry_after,
    )


async def _lead_fields(client: AmoClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in client.pages(FIELDS_PATH, [("limit", 50)], "custom_fields"):
        found.extend(page)
    return found


def _call_budget(settings: Settings) -> float:
    """Seconds one probe may take in all: the client's three tries of `api_timeout` each
    plus their back-off, with room to spare."""
    return 3 * settings.api_timeout + 10.0


async def _call(awaitable: Any, budget: float) -> Outcome[Any]:
    try:
        async with asyncio.timeout(budget):
            return Outcome(await awaitable)
    except TimeoutError:
        return Outcome(error=f"no answer from amoCRM within {budget:.0f} s", kind="unreachable")
    except AmoCRMError as exc:
        return Outcome(error=str(exc), kind=_kind(exc))
    except SQLAlchemyError as exc:  # the shared rate limit or OAuth token row
        return Outcome(error=f"database: {_first_line(exc)}", kind="database")


def _kind(exc: AmoCRMError) -> ErrorKind:
    if isinstance(exc, ReauthRequired):
        return "reauth"
    if isinstance(exc, IPBlocked):
        return "ip_blocked"
    if isinstance(exc, RateLimited):
        return "paused"
    if isinstance(exc, RetryLater):
        return "unreachable"
    return "rejected"


async def _remember(
    settings: Settings, db: Database, subscriptions: list[Subscription], now: datetime
) -> None:
    """What doctor learned about the subscription is fresh: /health may use it at once."""
    destination = our_destination(settings)
    if destination is None:
        return
    secret = settings.webhook_secret_text
    # Only a cache for /health: doctor reports from what it just saw either way.
    with contextlib.suppress(SQLAlchemyError):
        await save_subscription_state(db, assess(subscriptions, destination, secret, now))


async def _service(base_url: str) -> Outcome[ServiceAnswer]:
    url = base_url.rstrip("/") + "/health"
    try:
        async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT) as http:
            response = await http.get(url)
    except httpx.HTTPError as exc:
        return Outcome(error=f"{url} does not answer ({type(exc).__name__})", kind="unreachable")
    try:
        body = response.json()
    except ValueError:
        body = None
    return Outcome(ServiceAnswer(url, response.status_code, body))


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
