"""The write turns are the queue of one writer thread (db/turns.py): transactions handed over
run there one after another, and an async transaction's turn occupies that thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from amosync.db.turns import WriteTurns


@pytest.fixture
def turns() -> WriteTurns:
    return WriteTurns(enabled=True)


async def test_work_runs_on_one_other_thread_in_the_order_handed_over(turns: WriteTurns) -> None:
    seen: list[tuple[int, int]] = []

    def job(n: int) -> int:
        time.sleep(0.01 * (3 - n))  # the first is the slowest: order is the queue's, not speed
        seen.append((n, threading.get_ident()))
        return n * 10

    try:
        assert [0, 10, 20] == await asyncio.gather(*(turns.run(job, n) for n in range(3)))
        assert [0, 1, 2] == [n for n, _ in seen]
        assert len({ident for _, ident in seen}) == 1
        assert seen[0][1] != threading.get_ident()
        assert turns.idle()
    finally:
        turns.close()


async def test_the_next_transaction_starts_without_waiting_for_the_event_loop(
    turns: WriteTurns,
) -> None:
    """What the writer thread is for: with the loop busy (here: blocked outright), the
    transaction queued second still starts as soon as the first ends."""
    second_started = threading.Event()
    try:
        first = asyncio.ensure_future(turns.run(time.sleep, 0.05))
        second = asyncio.ensure_future(turns.run(second_started.set))
        await asyncio.sleep(0)  # both handed over
        assert second_started.wait(2)  # the loop's thread waits here; nobody else can help
        await asyncio.gather(first, second)
    finally:
        turns.close()


async def test_an_async_transactions_turn_holds_back_the_writer_thread(turns: WriteTurns) -> None:
    order: list[str] = []
    try:
        async with turns.turn():
            order.append("turn in")
            queued = asyncio.ensure_future(turns.run(order.append, "queued job"))
            await asyncio.sleep(0.05)
            assert not queued.done()
            assert not turns.idle()
            order.append("turn out")
        await asyncio.wait_for(queued, 2)
        assert ["turn in", "turn out", "queued job"] == order
        assert turns.idle()
    finally:
        turns.close()


async def test_a_waiter_cancelled_before_its_turn_leaves_nothing_behind(
    turns: WriteTurns,
) -> None:
    """Its place in the queue passes at once: the thread is not held, the queue count is
    right again (`idle` decides whether a webhook commit may run on the loop's thread)."""
    entered = asyncio.Event()

    async def waits_for_a_turn() -> None:
        async with turns.turn():
            entered.set()

    release = threading.Event()
    try:
        blocker = asyncio.ensure_future(turns.run(release.wait, 5))
        waiter = asyncio.ensure_future(waits_for_a_turn())
        queued = asyncio.ensure_future(turns.run(lambda: "after"))
        await asyncio.sleep(0.02)
        waiter.cancel()
        queued.cancel()  # never started: dropped from the queue
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(blocker, 2)
        assert "later" == await asyncio.wait_for(turns.run(lambda: "later"), 2)
        assert not entered.is_set()
        assert waiter.cancelled()
        assert turns.idle()
    finally:
        turns.close()


async def test_closing_ends_the_thread_and_a_later_run_starts_a_new_one(turns: WriteTurns) -> None:
    first = await turns.run(threading.get_ident)
    turns.close()
    assert first not in {t.ident for t in threading.enumerate()}
    second = await turns.run(threading.get_ident)
    turns.close()
    assert second != threading.get_ident()
