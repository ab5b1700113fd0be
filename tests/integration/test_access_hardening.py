"""Issue #19: logout revokes the session everywhere, CSRF tokens are bound to the session,
failed token attempts are throttled per address, and loopback-only mode is not fooled by
DNS rebinding, other 127/8 addresses or a proxy."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from amosync.db.database import Database
from amosync.db.tables import sync_state
from amosync.settings import Settings
from amosync.web.access import SESSION_SECONDS
from amosync.web.sessions import REVOKED_PREFIX, revoke_session, session_revoked
from tests.integration.test_access import REMOTE, csrf_of, log_in
from tests.integration.test_read_api import ADMIN, AUTH, SECRET_PATH, api
from tests.live_app import demo_fake, fail_one_event, seed_through_pipeline

LIMIT = 10  # failures per minute per address before 429


async def test_logout_revokes_a_copied_session_cookie_on_every_process(
    make_settings: Callable[..., Settings],
) -> None:
    """A cookie copied before logout stops working, also on another web process (another
    app on the same database)."""
    settings = make_settings(admin_token=ADMIN)
    async with (
        api(settings, demo_fake(0), client_host=REMOTE) as one,
        api(settings, demo_fake(0), client_host=REMOTE) as two,
    ):
        await log_in(one)
        cookie = one.cookies["amosync_session"]
        two.cookies.set("amosync_session", cookie)
        before = await two.get("/status/live")
        page = await one.get("/")
        await one.post("/logout", data={"csrf_token": csrf_of(page.text)})
        one.cookies.set("amosync_session", cookie)  # the browser "forgot" it; a thief did not
        again_one = await one.get("/status/live")
        again_two = await two.get("/status/live")
        fresh = await log_in(two)
        after_new_login = await two.get("/status/live")

    assert 200 == before.status_code
    assert (401, 401) == (again_one.status_code, again_two.status_code)
    assert (303, 200) == (fresh.status_code, after_new_login.status_code)


async def test_a_planted_matching_csrf_cookie_and_field_are_refused(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Any equal cookie/field pair used to pass; now the field must be the server's
    signature of this browser's cookie (loopback mode, where no token protects the page)."""
    fake = demo_fake(1)
    async with api(make_settings(admin_token=None, max_attempts=1), fake) as client:
        (lead,) = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        await fail_one_event(client, database, fake, SECRET_PATH, lead)
        client.cookies.set("amosync_csrf", "k" * 43)
        planted = await client.post("/status/events/1/retry", data={"csrf_token": "k" * 43})
        page = await client.get("/?events=failed")
        own = await client.post("/status/events/1/retry", data={"csrf_token": csrf_of(page.text)})

    assert (403, "CSRF token mismatch: reload the page and try again") == (
        planted.status_code,
        planted.text,
    )
    assert 303 == own.status_code


async def test_a_csrf_token_of_one_session_does_not_work_in_another(
    make_settings: Callable[..., Settings],
) -> None:
    """Same browser cookie, two sessions: the first session's token is refused in the second."""
    async with api(make_settings(admin_token=ADMIN), demo_fake(0), client_host=REMOTE) as client:
        await log_in(client)
        first = csrf_of((await client.get("/")).text)
        await log_in(client)  # a new session, the same CSRF cookie
        second = csrf_of((await client.get("/")).text)
        stale = await client.post("/status/events/1/retry", data={"csrf_token": first})
        current = await client.post("/status/events/1/retry", data={"csrf_token": second})

    assert first != second
    assert 403 == stale.status_code
    assert 303 == current.status_code


@pytest.mark.parametrize("kind", ["bearer", "basic", "login"])
async def test_failed_attempts_are_throttled_per_address_and_logged_without_the_value(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """After 10 failures in a minute an address gets 429 with Retry-After, even with the
    right token; another address is unaffected; each failure is logged, the guess is not."""
    guess = "wrong-guess-" + "g" * 20

    async def attempt(client: httpx.AsyncClient, token: str) -> int:
        if kind == "bearer":
            answer = await client.get("/api/events", headers={"Authorization": f"Bearer {token}"})
        elif kind == "basic":
            basic = base64.b64encode(f"ops:{token}".encode()).decode()
            answer = await client.get("/status/live", headers={"Authorization": f"Basic {basic}"})
        else:
            answer = await log_in(client, token)
        statuses.append((answer.status_code, answer.headers.get("retry-after")))
        texts.append(answer.text)
        return answer.status_code

    statuses: list[tuple[int, str | None]] = []
    texts: list[str] = []
    settings = make_settings(admin_token=ADMIN)
    with caplog.at_level(logging.WARNING):
        async with api(settings, demo_fake(0), client_host=REMOTE) as client:
            for _ in range(LIMIT):
                await attempt(client, guess)
            await attempt(client, guess)
            await attempt(client, ADMIN)
            async with api(settings, demo_fake(0), client_host="198.51.100.9") as other:
                await attempt(other, ADMIN)

    failed, blocked, blocked_right, other_right = (
        statuses[:LIMIT],
        statuses[LIMIT],
        statuses[LIMIT + 1],
        statuses[LIMIT + 2][0],
    )
    assert {401} == {status for status, _ in failed}
    assert (429, 429) == (blocked[0], blocked_right[0])
    assert blocked[1] is not None
    assert 1 <= int(blocked[1]) <= 60
    assert other_right in (200, 303)
    if kind == "login":  # the login page says why, in the page's language
        assert "Too many wrong tokens from your address" in texts[LIMIT]
    records = [r for r in caplog.records if r.getMessage() == "admin_auth_failed"]
    assert LIMIT == len(records)
    assert {REMOTE} == {getattr(r, "client", None) for r in records}
    assert [] == [r for r in caplog.records if guess in str(vars(r))]


@pytest.mark.parametrize(
    ("client_host", "headers", "expected"),
    [
        ("127.0.0.1", {"Host": "localhost:3000"}, 200),
        ("::1", {"Host": "[::1]:3000"}, 200),
        ("127.0.0.1", {"Host": "127.0.0.1"}, 200),
        ("127.0.0.1", {"Host": "evil.example:3000"}, 403),  # DNS rebinding
        ("127.0.0.1", {"Host": "localhost.evil.example"}, 403),
        ("127.0.0.2", {"Host": "localhost"}, 403),  # not 127.0.0.1 or ::1
        ("127.0.0.1", {"Host": "localhost", "X-Forwarded-For": "127.0.0.1"}, 403),
        ("127.0.0.1", {"Host": "localhost", "Forwarded": "for=127.0.0.1"}, 403),
    ],
)
@pytest.mark.parametrize("path", ["/", "/api/events", "/metrics"])
async def test_loopback_only_mode_wants_a_loopback_host_and_no_proxy(
    make_settings: Callable[..., Settings],
    client_host: str,
    headers: dict[str, str],
    expected: int,
    path: str,
) -> None:
    """Without an admin token only 127.0.0.1/::1, addressed by a loopback name and not
    through a proxy, see the private pages."""
    async with api(make_settings(admin_token=None), demo_fake(0), client_host=client_host) as c:
        answer = await c.get(path, headers=headers)

    assert expected == answer.status_code, answer.text


async def test_token_mode_still_serves_any_host_with_the_token(
    make_settings: Callable[..., Settings],
) -> None:
    """The Host check is for loopback-only mode: with a token, a proxy's name is fine."""
    async with api(make_settings(admin_token=ADMIN), demo_fake(0), client_host=REMOTE) as c:
        answer = await c.get(
            "/api/events", headers={**AUTH, "Host": "amosync.internal.example.com"}
        )

    assert 200 == answer.status_code


async def test_revocations_are_forgotten_once_their_sessions_have_expired(
    database: Database,
) -> None:
    """A logout stores one row; rows older than a session's lifetime are pruned then, so the
    table does not grow with every logout ever made."""
    old = datetime.now(UTC) - timedelta(seconds=SESSION_SECONDS + 60)
    async with database.write() as conn:
        await conn.execute(
            sync_state.insert().values(
                key=REVOKED_PREFIX + "old-session", value={"revoked": True}, updated_at=old
            )
        )
    await revoke_session(database, "new-session", SESSION_SECONDS)
    await revoke_session(database, "new-session", SESSION_SECONDS)  # twice: no error

    assert (False, True) == (
        await session_revoked(database, "old-session"),
        await session_revoked(database, "new-session"),
    )
