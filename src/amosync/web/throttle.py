"""Slow down guessing of the admin token: failed attempts are counted per client address.

After `limit` failures within `window` seconds an address gets 429 with `Retry-After` for
any further attempt until its oldest counted failure leaves the window. Counts live in this
process only (each web process has its own): with several processes an attacker gets
`limit` tries per process per window, still far too few for a 16-character token.
Memory is bounded: at most `max_clients` addresses are tracked, the stalest dropped first.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger(__name__)

FAILURE_LIMIT = 10
FAILURE_WINDOW = 60.0
MAX_CLIENTS = 10_000


class FailureThrottle:
    def __init__(
        self,
        limit: int | None = None,
        window: float = FAILURE_WINDOW,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = FAILURE_LIMIT if limit is None else limit  # read late: tests tune it
        self._window = window
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Seconds `client` must wait before its next attempt, or None when it may try."""
        stamps = self._recent(client)
        if stamps is None or len(stamps) < self._limit:
            return None
        return max(1, math.ceil(stamps[0] + self._window - self._clock()))

    def failed(self, client: str, kind: str) -> None:
        """Count a failed attempt and log it (the address and kind, never the value)."""
        stamps = self._recent(client)
        if stamps is None:
            stamps = self._failures[client] = deque(maxlen=self._limit)
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)
        self._failures.move_to_end(client)
        stamps.append(self._clock())
        log.warning(
            "admin_auth_failed",
            extra={
                "event": "admin_auth_failed",
                "client": client,
                "kind": kind,
                "recent_failures": len(stamps),
                "throttled": len(stamps) >= self._limit,
            },
        )

    def _recent(self, client: str) -> deque[float] | None:
        stamps = self._failures.get(client)
        if stamps is None:
            return None
        horizon = self._clock() - self._window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[client]
            return None
        return stamps
