"""TokenExpiry: what `/health`, `status` and `doctor` say about a token's expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from amosync.amocrm.token_info import TokenExpiry, configured_kind, expiry_check
from amosync.settings import Settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_long_lived_expiry_is_the_token_exp() -> None:
    """For a long-lived token the access expiry is what counts."""
    expiry = TokenExpiry("long_lived", NOW + timedelta(days=3), None)

    assert NOW + timedelta(days=3) == expiry.expires_at


def test_oauth_expiry_is_the_refresh_token() -> None:
    """For OAuth the daily access expiry is routine; the refresh token's end is what counts."""
    expiry = TokenExpiry("oauth", NOW + timedelta(hours=1), NOW + timedelta(days=80))

    assert (NOW + timedelta(days=80), False) == (
        expiry.expires_at,
        expiry.needs_warning(settings(token_warn_days=14), NOW),
    )


def test_warning_window_and_expired() -> None:
    """Within token_warn_days: warn but pass; past expiry: fail; unknown expiry: no check."""
    s = settings(token_warn_days=14)
    far = TokenExpiry("long_lived", NOW + timedelta(days=30), None)
    near = TokenExpiry("long_lived", NOW + timedelta(days=13), None)
    gone = TokenExpiry("long_lived", NOW - timedelta(minutes=1), None)
    unknown = TokenExpiry("long_lived", None, None)

    results = [expiry_check(s, e, NOW) for e in (far, near, gone, unknown)]
    summary = [None if r is None else (r[0], r[1].split(" ")[0]) for r in results]

    assert [(True, "long-lived"), (True, "warning:"), (False, "long-lived"), None] == summary


def test_expired_long_lived_names_the_variable() -> None:
    """The fix for an expired long-lived token names the variable to set."""
    gone = TokenExpiry("long_lived", NOW - timedelta(days=1), None)

    assert (False, True) == _verdict(expiry_check(settings(), gone, NOW), "LONG_LIVED_TOKEN")


def _verdict(result: tuple[bool, str] | None, needle: str) -> tuple[bool, bool] | None:
    return None if result is None else (result[0], needle in result[1])


def test_oauth_expired_says_how_to_reauthorise() -> None:
    """An expired OAuth refresh token fails with the `amosync auth login` fix."""
    gone = TokenExpiry("oauth", NOW - timedelta(days=60), NOW - timedelta(days=1))

    assert (False, True) == _verdict(expiry_check(settings(), gone, NOW), "amosync auth login")


def test_as_json_shape() -> None:
    """The machine-readable form other reports embed."""
    expiry = TokenExpiry("oauth", NOW + timedelta(hours=2), NOW + timedelta(days=10))

    assert {
        "kind": "oauth",
        "access_expires_at": "2026-06-01T14:00:00+00:00",
        "refresh_expires_at": "2026-06-11T12:00:00+00:00",
        "expires_at": "2026-06-11T12:00:00+00:00",
        "expired": False,
        "warning": True,
    } == expiry.as_json(settings(token_warn_days=14), NOW)


def test_configured_kind() -> None:
    """A client id means OAuth (even beside a long-lived token); else the long-lived token."""
    assert ["oauth", "long_lived", None] == [
        configured_kind(settings(amocrm_client_id="id", amocrm_long_lived_token="t")),
        configured_kind(settings(amocrm_long_lived_token="t")),
        configured_kind(settings()),
    ]
