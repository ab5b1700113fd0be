"""How long to wait before trying again: retries spread out and never synchronise."""

from __future__ import annotations

import contextlib
import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# Attempts before an event is marked failed: the one default for `Settings.max_attempts` and
# `WorkerConfig.max_attempts` (with the default delays, about 6 h of retrying).
MAX_ATTEMPTS = 15
# Longest pause a 429's `retry_after` may impose (`AMOSYNC_MAX_RETRY_AFTER`'s default): amoCRM
# documents 300-ish seconds at most; a larger figure is a bug or a hostile proxy, and a pause
# is shared by every process through the database and survives restarts.
MAX_RETRY_AFTER = 120.0


def retry_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before attempt `attempt + 1`: base·2^(attempt-1), capped, with ±20 % jitter.

    Jitter keeps many events that failed together from all retrying in the same second.
    """
    if attempt < 1:
        attempt = 1
    exponent = min(attempt - 1, 30)  # 2**30 already exceeds any sensible cap
    delay = min(cap, base * (2**exponent))
    uniform = rng.uniform if rng is not None else random.uniform
    jitter: float = uniform(0.8, 1.2)
    result: float = min(cap, delay * jitter)
    return result


def parse_retry_after(
    header: str | None,
    body: object,
    *,
    cap: float = MAX_RETRY_AFTER,
    now: datetime | None = None,
) -> float | None:
    """Seconds amoCRM asks us to wait after a 429, at most `cap`; None when it says nothing
    usable.

    The documented place is `retry_after` in the problem+json body; a `Retry-After` header is
    not documented but honoured when present, as seconds or as an HTTP date. The larger of
    the two wins. NaN and negative figures are ignored; `inf`, `1e9` or a date years ahead
    become `cap`, so no answer can stop every process for longer than that.
    """
    found: list[float] = []
    if header:
        found += _seconds(header.strip(), now)
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(float(value))
        elif isinstance(value, str):
            found += _seconds(value.strip(), now)
    usable = [f for f in found if f >= 0]  # NaN compares false: dropped here too
    return min(max(usable), cap) if usable else None


def _seconds(text: str, now: datetime | None) -> list[float]:
    """A `Retry-After` value: delta-seconds, or an HTTP date (seconds from `now`)."""
    if len(text) > 64:  # neither a number nor a date; float() of a huge string is slow
        return []
    with contextlib.suppress(ValueError, OverflowError):
        return [float(text)]
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return [max(0.0, (when - (now or datetime.now(UTC))).total_seconds())]
    return []


def clamp_pause(seconds: float, cap: float) -> float:
    """A pause within [0, cap]; NaN counts as no pause."""
    if math.isnan(seconds):
        return 0.0
    return min(max(seconds, 0.0), cap)
