"""Session cookies and language choice: pure functions, no server."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from amosync.db.database import Database
from amosync.settings import Settings
from amosync.web.access import SESSION_SECONDS, AccessPolicy
from amosync.web.i18n import from_accept_language
from amosync.web.throttle import FailureThrottle

NOW = 1_800_000_000.0


def policy(token: str | None) -> AccessPolicy:
    settings = Settings(_env_file=None, admin_token=token)
    # Never connected: these checks are signature and expiry only.
    return AccessPolicy(settings, Database(create_async_engine("sqlite+aiosqlite://")))


def test_session_is_valid_until_it_expires_and_only_for_its_token() -> None:
    """A session opens the page for 12 h; a tampered, expired or other-token cookie does not."""
    one = policy("first-token-123456")
    cookie = one.new_session(NOW)
    session, expires, signature = cookie.split(".")

    assert True is one.session_valid(cookie, NOW + SESSION_SECONDS - 1)
    assert False is one.session_valid(cookie, NOW + SESSION_SECONDS + 1)
    assert False is one.session_valid(f"{session}.{int(expires) + 3600}.{signature}", NOW)
    assert False is one.session_valid(f"x{session[1:]}.{expires}.{signature}", NOW)
    assert False is policy("second-token-654321").session_valid(cookie, NOW)
    assert False is one.session_valid("garbage", NOW)
    assert "first-token" not in cookie
    assert session != one.new_session(NOW).split(".")[0]  # each login its own id


def test_no_token_means_no_sessions() -> None:
    """Without AMOSYNC_ADMIN_TOKEN nothing matches and no cookie is ever valid."""
    open_policy = policy(None)

    assert False is open_policy.token_configured
    assert False is open_policy.token_matches("")
    assert False is open_policy.session_valid("a.1.abc", NOW)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"),
        ("en-GB,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE,de;q=0.9,ru;q=0.5,en;q=0.4", "ru"),
        ("fr", "en"),
        ("", "en"),
        ("ru;q=bogus,en;q=0.1", "en"),
    ],
)
def test_accept_language_picks_the_preferred_supported_language(header: str, expected: str) -> None:
    """The supported language with the highest q wins; nothing usable means English."""
    assert expected == from_accept_language(header)


def test_throttle_forgets_failures_after_the_window_and_bounds_its_memory() -> None:
    """10 failures block an address until the oldest is a minute old; at most `max_clients`
    addresses are remembered (the stalest dropped), so a scan of many addresses cannot
    grow memory."""
    now = [NOW]
    throttle = FailureThrottle(limit=10, window=60.0, max_clients=3, clock=lambda: now[0])
    for _ in range(10):
        throttle.failed("203.0.113.7", "bearer")
        now[0] += 1
    blocked = throttle.retry_after("203.0.113.7")
    now[0] += 51  # the first failure is now 61 s old
    after_window = throttle.retry_after("203.0.113.7")
    for i in range(5):
        throttle.failed(f"198.51.100.{i}", "basic")

    assert (50, None) == (blocked, after_window)
    assert 3 == len(throttle._failures)
    assert ["198.51.100.2", "198.51.100.3", "198.51.100.4"] == list(throttle._failures)
