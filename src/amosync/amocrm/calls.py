"""The call log's seam: what one exchange with amoCRM was, and what runs once it is over.

Kept apart from the client so the token endpoint and the shared rate limiter can log and
release calls without importing the client itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from amosync.amocrm.ratelimit import RateLimiter, Slot


class CallRecorder(Protocol):
    """Remembers each call (for `status` and the hourly budget); must never raise."""

    async def record(self, method: str, path: str, status: int, duration_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP exchange with amoCRM, as the call log keeps it (`status` 0: no response)."""

    method: str
    path: str
    status: int
    duration_ms: int


class AfterAnswer(Protocol):
    """Runs once per request when its answer (or failure) is in: frees the request's rate-limit
    slot and logs the call (`call` is None when no request was sent, e.g. no token).

    One seam for both, so a database-backed limiter and call log can share one transaction
    (see `shared_limit.ReleaseAndRecord`).
    """

    async def __call__(self, slot: Slot, call: Call | None) -> None: ...


class ReleaseThenRecord:
    """The plain `AfterAnswer`: `limiter.done(slot)`, then `recorder.record(…)`."""

    def __init__(self, limiter: RateLimiter, recorder: CallRecorder | None) -> None:
        self._limiter = limiter
        self._recorder = recorder

    async def __call__(self, slot: Slot, call: Call | None) -> None:
        await self._limiter.done(slot)
        if call is not None and self._recorder is not None:
            await self._recorder.record(call.method, call.path, call.status, call.duration_ms)
