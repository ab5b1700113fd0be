"""core/backoff.py: retry delays grow, stay under their cap and never synchronise."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amosync.core.backoff import clamp_pause, retry_delay


@pytest.mark.parametrize(("attempt", "nominal"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)])
def test_the_delay_doubles_with_each_attempt_within_the_jitter(
    attempt: int, nominal: float
) -> None:
    delay = retry_delay(attempt, base=1.0, cap=1000.0, rng=random.Random(attempt))
    assert nominal * 0.8 <= delay <= nominal * 1.2


def test_attempt_zero_or_below_counts_as_the_first() -> None:
    assert retry_delay(0, base=1.0, cap=10.0, rng=random.Random(1)) == retry_delay(
        1, base=1.0, cap=10.0, rng=random.Random(1)
    )


def test_a_huge_attempt_number_is_capped_without_overflow() -> None:
    assert 10.0 >= retry_delay(10_000, base=0.5, cap=10.0) >= 8.0


def test_events_that_failed_together_do_not_retry_together() -> None:
    rng = random.Random(7)
    delays = {retry_delay(3, base=1.0, cap=60.0, rng=rng) for _ in range(20)}
    assert len(delays) > 15


@given(attempt=st.integers(-5, 200), base=st.floats(0.01, 100), cap=st.floats(0.01, 10_000))
def test_the_delay_never_exceeds_its_cap(attempt: int, base: float, cap: float) -> None:
    assert 0 < retry_delay(attempt, base=base, cap=cap) <= cap


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(-3.0, 0.0), (0.0, 0.0), (12.5, 12.5), (500.0, 120.0), (math.inf, 120.0), (math.nan, 0.0)],
)
def test_a_pause_is_clamped_to_zero_and_the_cap(seconds: float, expected: float) -> None:
    assert expected == clamp_pause(seconds, 120.0)
