"""Periodic jobs: they run on schedule, survive their own errors and stop with the worker."""

from __future__ import annotations

import asyncio

from amosync.worker.jobs import PeriodicJob, run_periodically


async def test_job_runs_repeatedly_survives_errors_and_stops() -> None:
    """A failing run is logged and the job keeps its schedule until `stopping` is set."""
    runs: list[int] = []
    stopping = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            raise RuntimeError("amoCRM hiccup")
        if len(runs) == 4:
            stopping.set()

    job = PeriodicJob("flaky", interval=0.01, run=flaky)
    await asyncio.wait_for(run_periodically(job, stopping), timeout=5)

    assert [0, 1, 2, 3] == runs


async def test_job_waits_first_delay_and_does_not_run_after_stop() -> None:
    """A job set to start later never runs when the worker stops before then."""
    runs: list[int] = []
    stopping = asyncio.Event()

    async def job_body() -> None:
        runs.append(1)

    job = PeriodicJob("late", interval=0.01, run=job_body, first_delay=10)
    task = asyncio.create_task(run_periodically(job, stopping))
    await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(task, timeout=5)

    assert [] == runs
