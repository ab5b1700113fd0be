"""The status page's figures: computed once for the callers of one moment, then afresh."""

from __future__ import annotations

import asyncio

import pytest

from amosync.web.shared_result import SharedResult


async def test_callers_at_the_same_time_share_one_computation() -> None:
    shared: SharedResult[int] = SharedResult(max_age=60.0)
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    results = await asyncio.gather(*(shared.get("", compute) for _ in range(5)))
    assert [1] * 5 == results
    assert 1 == await shared.get("", compute)  # still fresh
    assert 2 == await shared.get("failed", compute)  # another key: its own
    shared.forget()
    assert 3 == await shared.get("", compute)


async def test_an_old_result_is_computed_again_and_a_failure_is_not_kept() -> None:
    shared: SharedResult[int] = SharedResult(max_age=0.0)
    values = iter([1, 2])

    async def compute() -> int:
        return next(values)

    async def broken() -> int:
        raise RuntimeError("database unreachable")

    assert 1 == await shared.get("", compute)
    assert 2 == await shared.get("", compute)
    with pytest.raises(RuntimeError):
        await shared.get("x", broken)
    with pytest.raises(RuntimeError):
        await shared.get("x", broken)
