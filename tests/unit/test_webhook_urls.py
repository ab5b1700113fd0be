"""Webhook URLs: ours from the settings, what may be subscribed, and masking for display."""

from __future__ import annotations

from typing import Any

import pytest

from amosync.amocrm.webhooks import (
    check_destination,
    mask_url,
    our_destination,
    parse_subscription,
)
from amosync.settings import Settings

SECRET = "0123456789abcdef"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_our_destination_needs_public_url_and_secret() -> None:
    """Public URL + /amocrm/ + secret; None while either is missing."""
    both = settings(public_url="https://sync.example.com/", webhook_secret=SECRET)

    assert f"https://sync.example.com/amocrm/{SECRET}" == our_destination(both)
    assert None is our_destination(settings(public_url="https://sync.example.com"))
    assert None is our_destination(settings(webhook_secret=SECRET))


@pytest.mark.parametrize(
    "url",
    [
        f"https://sync.example.com/amocrm/{SECRET}",
        f"https://example.com/behind/a/prefix/amocrm/{SECRET}",
        f"http://localhost:3000/amocrm/{SECRET}",
        f"http://127.0.0.1:3000/amocrm/{SECRET}",
    ],
)
def test_acceptable_destinations(url: str) -> None:
    """HTTPS (or plain HTTP on localhost) ending in /amocrm/<our secret> passes."""
    assert (None, None) == (
        check_destination(url, SECRET).error,
        check_destination(url, SECRET).mismatch,
    )


def test_plain_http_elsewhere_is_an_error_naming_https() -> None:
    """amoCRM only delivers to HTTPS: a public http:// URL is refused with the reason."""
    verdict = check_destination(f"http://sync.example.com/amocrm/{SECRET}", SECRET)

    assert "HTTPS" in (verdict.error or "")


@pytest.mark.parametrize(
    "url",
    [
        "https://sync.example.com/amocrm/another-secret",
        "https://sync.example.com/amocrm",
        f"https://sync.example.com/amocrm/{SECRET}/extra",
        "https://webhook.rentflow.rentals/amocrm",
    ],
)
def test_url_without_our_secret_is_a_mismatch(url: str) -> None:
    """A URL whose last segment is not our secret would be answered 403: flagged, not error."""
    verdict = check_destination(url, SECRET)

    assert None is verdict.error
    assert "403" in (verdict.mismatch or "")


def test_credentials_in_url_are_refused() -> None:
    """user:password@ in a webhook URL is refused (and never echoed)."""
    verdict = check_destination(f"https://u:pw@sync.example.com/amocrm/{SECRET}", SECRET)

    assert "user name or password" in (verdict.error or "")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://sync.example.com/amocrm/{SECRET}", "https://sync.example.com/amocrm/0123…"),
        ("https://sync.example.com/amocrm/abc", "https://sync.example.com/amocrm/…"),
        (
            "https://hooks.example.com/catch/12345/a1b2c3d4e5/?token=supersecret&x=1",
            "https://hooks.example.com/catch/12345/a1b2…/?token=supe…&x=…",
        ),
        ("https://n8n.example.com/webhook/amocrm", "https://n8n.example.com/webhook/amocrm"),
        ("https://user:pw@h.example.com/amocrm", "https://h.example.com/amocrm"),
    ],
)
def test_mask_url_hides_secrets_and_keeps_the_readable_parts(url: str, shown: str) -> None:
    """Our secret, key-like path segments and query values are cut to 4 characters."""
    assert shown == mask_url(url, "abc" if url.endswith("/abc") else SECRET)


def test_parse_subscription_tolerates_odd_fields() -> None:
    """String ids and a `"1"` disabled flag are read; unknown settings entries are dropped."""
    hook = parse_subscription(
        {
            "id": "7",
            "destination": "https://x.example.com/h",
            "disabled": "1",
            "settings": ["add_lead", 5],
        }
    )

    assert (7, True, ("add_lead",)) == (hook.id, hook.disabled, hook.settings)
    assert ["update_lead", "status_lead"] == hook.missing_settings()[:2]
