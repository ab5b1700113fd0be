"""How long to wait before trying again: retries spread out and never synchronise."""

from __future__ import annotations

import contextlib
import random


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


def parse_retry_after(header: str | None, body: object) -> float | None:
    """Seconds amoCRM asks us to wait after a 429.

    The documented place is `retry_after` in the problem+json body; a `Retry-After` header is
    not documented but honoured when present. The larger of the two wins.
    """
    found: list[float] = []
    if header:
        # An HTTP-date form is ignored: amoCRM is not known to send it.
        with contextlib.suppress(ValueError):
            found.append(float(header.strip()))
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(float(value))
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                found.append(float(value))
    positive = [f for f in found if f >= 0]
    return max(positive) if positive else None
