"""`retry_after` / `Retry-After` is bounded: no answer can pause every process for years."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from amosync.core.backoff import MAX_ATTEMPTS, MAX_RETRY_AFTER, parse_retry_after
from amosync.settings import Settings
from amosync.worker.loop import WorkerConfig

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        (None, {"retry_after": 300}, 120.0),  # the Kommo docs' example: more than the cap
        (None, {"retry_after": 1e9}, 120.0),
        (None, {"retry_after": "1e9"}, 120.0),
        (None, {"retry_after": "inf"}, 120.0),
        ("inf", None, 120.0),
        ("1e9", {"retry_after": 2}, 120.0),
        (None, {"retry_after": 7}, 7.0),
        ("3", None, 3.0),
        (None, {"retry_after": "NaN"}, None),
        ("nan", None, None),
        (None, {"retry_after": -5}, None),
        ("-1", {"retry_after": "-inf"}, None),
        ("x" * 5000, None, None),
        (None, {"retry_after": True}, None),
    ],
)
def test_retry_after_is_cut_to_the_default_cap(
    header: str | None, body: object, expected: float | None
) -> None:
    assert expected == parse_retry_after(header, body, now=NOW)


def test_default_cap_is_two_minutes() -> None:
    assert 120.0 == MAX_RETRY_AFTER == Settings(_env_file=None).max_retry_after


def test_an_http_date_counts_from_now_and_is_capped() -> None:
    soon = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    years = format_datetime(NOW + timedelta(days=11_000), usegmt=True)
    past = format_datetime(NOW - timedelta(days=1), usegmt=True)
    assert 30.0 == parse_retry_after(soon, None, now=NOW)
    assert 120.0 == parse_retry_after(years, None, now=NOW)
    assert 0.0 == parse_retry_after(past, None, now=NOW)
    assert parse_retry_after("Sun, 99 Foo 99999 99:99:99 GMT", None, now=NOW) is None


def test_a_tuned_cap_applies() -> None:
    assert 5.0 == parse_retry_after("1e9", None, cap=5.0, now=NOW)
    assert 2.0 == parse_retry_after("2", None, cap=5.0, now=NOW)


def test_max_attempts_has_one_default() -> None:
    """The worker's own default and the setting's agree (they were 10 and 15)."""
    settings = Settings(_env_file=None)
    assert WorkerConfig().max_attempts == settings.max_attempts == MAX_ATTEMPTS == 15
