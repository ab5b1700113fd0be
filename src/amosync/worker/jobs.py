"""Periodic jobs the worker runs beside the event loop (catch-up, token keep-alive, …).

A job is a name, an interval and a coroutine function. The worker owns their lifetime:
they start with `Worker.run()` and are cancelled when it stops. A job that raises is
logged and tried again at its next tick; it never takes the worker down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    first_delay: float = 0.0


async def run_periodically(job: PeriodicJob, stopping: asyncio.Event) -> None:
    """Run `job` every `interval` seconds until `stopping` is set."""
    delay = job.first_delay
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay)
        if stopping.is_set():
            return
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad run must not end the job or the worker
            log.exception(
                "job_failed",
                extra={"event": "job_failed", "job": job.name, "error": str(exc)[:300]},
            )
        delay = job.interval
