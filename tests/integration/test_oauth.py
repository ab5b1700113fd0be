"""OAuth tokens against the fake amoCRM, on SQLite and PostgreSQL: refresh ahead of expiry,
after a 401, exactly once under concurrency (one process and two), lost answers, refusals,
keep-alive, and the wiring into the client, the worker and /health."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from amosync.amocrm import AmoClient, SlidingWindowLimiter
from amosync.amocrm.oauth import OAuthTokens
from amosync.amocrm.token_endpoint import GrantRefused
from amosync.amocrm.token_store import StoredTokens, TokenGrant, TokenStore
from amosync.core.mapping import RentProgField
from amosync.db.database import Database
from amosync.db.tables import api_requests
from amosync.db.tables import webhook_events as ev
from amosync.errors import IPBlocked, RetryLater
from amosync.inbox import InboxStore
from amosync.oauth_setup import oauth_tokens, token_endpoint, token_keepalive_job
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import RENTPROG_FIELD_ID, FakeAmoState, Fault, run_fake_in_thread
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REDIRECT_URI
from amosync.web.health import run_checks
from amosync.worker.heartbeat import REAUTH_REQUIRED
from amosync.worker.loop import Worker, WorkerConfig

MakeSettings = Callable[..., Settings]


def oauth_settings(make_settings: MakeSettings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "amocrm_long_lived_token": None,
        "amocrm_client_id": FAKE_CLIENT_ID,
        "amocrm_client_secret": FAKE_CLIENT_SECRET,
        "amocrm_redirect_uri": FAKE_REDIRECT_URI,
    }
    values.update(overrides)
    return make_settings(**values)


async def consent(
    settings: Settings,
    database: Database,
    fake: FakeAmoState,
    transport: httpx.AsyncBaseTransport | None,
    *,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> StoredTokens:
    """What `amosync auth exchange` does: trade a fresh code, store the pair.

    `expires_in` overrides the stored access expiry (to make the token look expiring).
    """
    endpoint = token_endpoint(settings, transport=transport)
    assert endpoint is not None
    grant = await endpoint.exchange_code(fake.oauth.issue_code())
    if expires_in is not None:
        grant = TokenGrant(grant.access_token, grant.refresh_token, datetime.now(UTC) + expires_in)
    assert settings.api_base_url is not None
    return await TokenStore(database, settings.api_base_url).save(grant, now=now)


def provider(
    settings: Settings, database: Database, transport: httpx.AsyncBaseTransport | None
) -> OAuthTokens:
    assert settings.api_base_url is not None
    return oauth_tokens(settings, TokenStore(database, settings.api_base_url), transport=transport)


def api_client(
    settings: Settings, tokens: OAuthTokens, transport: httpx.AsyncBaseTransport | None
) -> AmoClient:
    assert settings.api_base_url is not None
    return AmoClient(settings.api_base_url, tokens, SlidingWindowLimiter(1000), transport=transport)


async def stored(settings: Settings, database: Database) -> StoredTokens:
    assert settings.api_base_url is not None
    row = await TokenStore(database, settings.api_base_url).load()
    assert row is not None
    return row


async def test_refreshes_ahead_of_expiry(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """An access token within the margin is refreshed before the call: no 401 is ever seen."""
    settings = oauth_settings(make_settings, token_refresh_margin=900)
    first = await consent(settings, database, fake, fake_transport, expires_in=timedelta(minutes=5))
    client = api_client(settings, provider(settings, database, fake_transport), fake_transport)

    account = await client.get_json("/api/v4/account")

    row = await stored(settings, database)
    assert account is not None
    assert (1, [200], 2) == (
        fake.oauth.refreshes,
        [r.status for r in fake.calls("/api/v4/")],
        row.version,
    )
    assert first.access_token != row.access_token
    await client.aclose()


async def test_fresh_token_is_used_as_is(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """A token far from expiry costs no refresh and one database read for many calls."""
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport)
    client = api_client(settings, provider(settings, database, fake_transport), fake_transport)

    for _ in range(3):
        await client.get_json("/api/v4/account")

    assert (0, 3) == (fake.oauth.refreshes, len(fake.calls("/api/v4/account", status=200)))
    await client.aclose()


async def test_401_refreshes_once_and_retries(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """amoCRM rejects a not-yet-expired token: one refresh, the call is retried and succeeds."""
    settings = oauth_settings(make_settings)
    first = await consent(settings, database, fake, fake_transport)
    client = api_client(settings, provider(settings, database, fake_transport), fake_transport)
    await client.get_json("/api/v4/account")
    fake.tokens.discard(first.access_token)  # amoCRM stopped accepting it

    account = await client.get_json("/api/v4/account")

    assert account is not None
    assert (1, [200, 401, 200]) == (
        fake.oauth.refreshes,
        [r.status for r in fake.calls("/api/v4/")],
    )
    await client.aclose()


async def test_concurrent_requests_share_one_refresh(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """20 concurrent requests on an expired token in one process: exactly one refresh."""
    fake.rate_limit_rps = None
    fake.latency_seconds = 0.05  # the refresh takes a while, so the others really wait
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    client = api_client(settings, provider(settings, database, fake_transport), fake_transport)

    answers = await asyncio.gather(*(client.get_json("/api/v4/account") for _ in range(20)))

    assert (1, 1, 20) == (
        fake.oauth.refresh_requests,
        fake.oauth.refreshes,
        sum(a is not None for a in answers),
    )
    assert 20 == len(fake.calls("/api/v4/account", status=200))
    await client.aclose()


async def test_two_processes_race_to_one_refresh(
    make_settings: MakeSettings,
    db_url: str,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """Two engines (two worker processes) hit an expired token at once: exactly one refresh;
    the loser finds the refresh lease held, waits for the row to change and uses the winner's
    token."""
    fake.rate_limit_rps = None
    fake.latency_seconds = 0.2  # the winner holds the refresh lease while amoCRM answers
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    other_database = Database.open(db_url)
    try:
        a = provider(settings, database, fake_transport)
        b = provider(settings, other_database, fake_transport)

        tokens = await asyncio.gather(*(p.token() for p in (a, b) for _ in range(5)))
    finally:
        await other_database.dispose()

    row = await stored(settings, database)
    assert (1, 1, 2, {row.access_token}) == (
        fake.oauth.refresh_requests,
        fake.oauth.refreshes,
        row.version,
        set(tokens),
    )


async def test_lost_refresh_answer_is_retried_with_the_old_refresh_token(
    make_settings: MakeSettings, database: Database
) -> None:
    """The first refresh answer never arrives (timeout): the same old refresh token is sent
    again, amoCRM still honours it, and the pair from the second answer is stored and works."""
    fake = FakeAmoState(rate_limit_rps=None)
    with run_fake_in_thread(fake) as url:
        settings = oauth_settings(make_settings, amocrm_base_url=url, api_timeout=0.5)
        first = await consent(settings, database, fake, None, expires_in=timedelta(seconds=-1))
        fake.oauth.lose_answers, fake.oauth.lose_seconds = 1, 1.5
        client = api_client(settings, provider(settings, database, None), None)

        account = await client.get_json("/api/v4/account")
        await client.aclose()

    row = await stored(settings, database)
    assert account is not None
    assert (2, 2) == (fake.oauth.refreshes, row.version)
    # The new pair was used, so the old refresh token's grace is over; the stored one lives.
    assert (False, True) == (
        fake.oauth.refresh_alive(first.refresh_token or ""),
        fake.oauth.refresh_alive(row.refresh_token or ""),
    )


async def test_refresh_lost_every_time_changes_nothing_and_recovers(
    make_settings: MakeSettings, database: Database
) -> None:
    """All tries time out: RetryLater, the row keeps the old pair; the next call refreshes
    with the old refresh token and succeeds."""
    fake = FakeAmoState(rate_limit_rps=None)
    with run_fake_in_thread(fake) as url:
        settings = oauth_settings(make_settings, amocrm_base_url=url, api_timeout=0.3)
        first = await consent(settings, database, fake, None, expires_in=timedelta(seconds=-1))
        fake.oauth.lose_answers, fake.oauth.lose_seconds = 3, 1.0
        tokens = provider(settings, database, None)

        with pytest.raises(RetryLater):
            await tokens.token()
        unchanged = await stored(settings, database)
        token = await tokens.token()

    row = await stored(settings, database)
    assert (first.version, first.refresh_token) == (unchanged.version, unchanged.refresh_token)
    assert (4, 2, row.access_token) == (fake.oauth.refreshes, row.version, token)


@pytest.mark.parametrize("status", [400, 401])
async def test_refused_refresh_says_how_to_reauthorise(
    status: int,
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """A dead refresh token (400 or 401, "Invalid refresh token") raises ReauthRequired
    naming the commands, and amoCRM is not asked again until the row changes."""
    fake.oauth.refused_status = status
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    fake.oauth.revoke()
    tokens = provider(settings, database, fake_transport)

    with pytest.raises(GrantRefused) as refused:
        await tokens.token()
    with pytest.raises(GrantRefused):
        await tokens.token()

    message = str(refused.value)
    assert ("Invalid refresh token", 1) == (refused.value.hint, fake.oauth.refresh_requests)
    assert "amosync auth url" in message
    assert "amosync auth exchange CODE" in message


async def test_refused_refresh_keeps_events_pending(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """The worker pauses on a refused refresh: no event fails or loses an attempt."""
    fake.rate_limit_rps = None
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    fake.oauth.revoke()
    lead = fake.add_lead()
    now = datetime.now(UTC)
    await InboxStore(database).append(
        [
            {
                "received_at": now,
                "source": "webhook",
                "entity": "leads",
                "action": "update",
                "entity_id": lead["id"],
                "payload": {"id": str(lead["id"])},
                "status": "pending",
                "attempts": 0,
                "available_at": now,
            }
        ]
    )
    client = api_client(settings, provider(settings, database, fake_transport), fake_transport)
    worker = Worker(
        database,
        InboxStore(database),
        client,
        RentProgField(RENTPROG_FIELD_ID),
        WorkerConfig(linger=0.0, retry_base_delay=0.0, max_attempts=1),
    )

    task = asyncio.create_task(worker.run())
    for _ in range(200):
        if worker.state.state == REAUTH_REQUIRED:
            break
        await asyncio.sleep(0.02)
    paused = (worker.state.state, worker.state.detail or "")
    worker.stop()
    await task
    await client.aclose()

    async with database.read() as conn:
        events = (await conn.execute(select(ev.c.status, ev.c.attempts))).all()
    assert (REAUTH_REQUIRED, True) == (paused[0], "amosync auth exchange CODE" in paused[1])
    assert [("pending", 0)] == [tuple(e) for e in events]
    assert 0 == len(fake.calls("/api/v4/"))


async def test_keepalive_refreshes_an_idle_token_once(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """Tokens last refreshed 40 days ago (keep-alive 30): the job refreshes once, then waits."""
    settings = oauth_settings(make_settings, token_keepalive_days=30)
    old = datetime.now(UTC) - timedelta(days=40)
    await consent(settings, database, fake, fake_transport, now=old)
    job = token_keepalive_job(settings, database, transport=fake_transport)
    assert job is not None

    results = [await job.run(), await job.run()]

    row = await stored(settings, database)
    async with database.read() as conn:
        logged = (
            await conn.execute(select(api_requests.c.path).where(api_requests.c.purpose == "oauth"))
        ).all()
    assert ([True, False], 1, 2) == (results, fake.oauth.refreshes, row.version)
    # Logged once, outside any token transaction (inside one, SQLite would wait for itself).
    assert [("/oauth2/access_token",)] == [tuple(r) for r in logged]
    assert row.updated_at > old + timedelta(days=39)
    assert row.refresh_expires_at is not None
    assert row.refresh_expires_at > datetime.now(UTC) + timedelta(days=89)


async def test_keepalive_leaves_recent_tokens_and_long_lived_alone(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """Tokens refreshed 10 days ago are not touched; with a long-lived token there is no job."""
    settings = oauth_settings(make_settings, token_keepalive_days=30)
    await consent(settings, database, fake, fake_transport, now=datetime.now(UTC) - timedelta(10))
    job = token_keepalive_job(settings, database, transport=fake_transport)
    assert job is not None

    refreshed = await job.run()

    assert (False, 0) == (refreshed, fake.oauth.refreshes)
    assert None is token_keepalive_job(make_settings(), database)


async def test_build_client_uses_stored_oauth_tokens(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """With a client id the service client sends the stored OAuth token, not the long-lived one."""
    settings = oauth_settings(make_settings)
    row = await consent(settings, database, fake, fake_transport)
    fake.tokens.discard("test-token")
    client = build_client(settings, database, transport=fake_transport)

    account = await client.get_json("/api/v4/account")
    await client.aclose()

    assert account is not None
    assert (0, [200]) == (fake.oauth.refreshes, [r.status for r in fake.calls("/api/v4/")])
    assert 1 == row.version


def _long_lived(expires_at: datetime) -> str:
    def segment(value: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=").decode()

    return f"{segment({'alg': 'RS256'})}.{segment({'exp': int(expires_at.timestamp())})}.sig"


async def test_health_warns_then_fails_on_long_lived_expiry(
    make_settings: MakeSettings, database: Database
) -> None:
    """/health: a long-lived token expiring within token_warn_days passes with a warning;
    an expired one fails the check."""
    now = datetime.now(UTC)
    soon = make_settings(amocrm_long_lived_token=_long_lived(now + timedelta(days=3)))
    gone = make_settings(amocrm_long_lived_token=_long_lived(now - timedelta(hours=1)))

    soon_check = (await run_checks(soon, database))["amocrm_token_expiry"]
    gone_check = (await run_checks(gone, database))["amocrm_token_expiry"]

    assert (True, "warning: long-lived token") == (soon_check.ok, soon_check.detail[:25])
    assert (False, "long-lived token expired") == (gone_check.ok, gone_check.detail[:24])


async def test_health_without_oauth_tokens_names_the_commands(
    make_settings: MakeSettings, database: Database
) -> None:
    """OAuth configured but never authorised: the credentials check says which command to run."""
    check = (await run_checks(oauth_settings(make_settings), database))["amocrm_credentials"]

    assert (False, True) == (check.ok, "amosync auth login" in check.detail)


async def test_token_endpoint_5xx_is_retried_and_403_is_not_a_refusal(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """A 503 from the token endpoint is retried with the same refresh token; a 403 (IP
    block) raises IPBlocked and does not mark the refresh token as refused."""
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    tokens = provider(settings, database, fake_transport)
    fake.script_faults(Fault(status=403), path_prefix="/oauth2/")

    with pytest.raises(IPBlocked):
        await tokens.token()
    fake.script_faults(Fault(status=503), path_prefix="/oauth2/")
    token = await tokens.token()

    assert [200, 403, 503, 200] == [r.status for r in fake.calls("/oauth2/")]
    assert (1, token) == (fake.oauth.refreshes, (await stored(settings, database)).access_token)
