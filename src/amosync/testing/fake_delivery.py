"""The fake amoCRM delivering webhooks to its subscriptions, as amoCRM does.

`publish(event, body)` finds every enabled subscription whose `settings` include `event`
(`add_lead`, `status_lead`, …) and queues one POST per destination. A background task on the
server's event loop sends them one at a time: form body, amoCRM's headers, a 2 s timeout;
an answer 100-299 is delivered, anything else (another status, a timeout, a refused
connection) a failure. A destination with **more than 100 failures within 2 hours** (the
latest one failed, by construction) is disabled, like amoCRM switches such a webhook off.

The queue is bounded: when it is full a delivery is dropped and counted (`dropped`), so a
dead destination cannot make the fake hold an unbounded backlog. amoCRM's delayed retries
(+5 min, +15 min …) are not played: the fake sends each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from amosync.testing.fake_webhooks import FakeWebhooks

DELIVERY_TIMEOUT = 2.0
FAILURE_LIMIT = 100  # disabled after MORE than this many failures …
FAILURE_WINDOW = 7200.0  # … within this many seconds
QUEUE_SIZE = 1000
USER_AGENT = "amoCRM-Webhooks/3.0"

_Delivery = tuple["FakeWebhooks", str, bytes]


@dataclass
class DestinationStats:
    delivered: int = 0
    failed: int = 0
    last_result: str = ""
    recent_failures: deque[float] = field(default_factory=deque)

    def as_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "failed": self.failed,
            "recent_failures": len(self.recent_failures),
            "last_result": self.last_result,
        }


@dataclass(kw_only=True)
class FakeDeliveries:
    """Knobs and counters of webhook delivery. Counters are read from any thread."""

    timeout: float = DELIVERY_TIMEOUT
    failure_limit: int = FAILURE_LIMIT
    failure_window: float = FAILURE_WINDOW
    queue_size: int = QUEUE_SIZE
    clock: Callable[[], float] = time.monotonic
    # Tests may route deliveries through an in-process app instead of the network.
    transport: httpx.AsyncBaseTransport | None = None
    dropped: int = 0
    stats: dict[str, DestinationStats] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _queue: asyncio.Queue[_Delivery] | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _sending: int = field(default=0, repr=False)

    def publish(self, hooks: FakeWebhooks, event: str, body: bytes) -> int:
        """Queue `body` for every enabled subscription to `event`; returns how many were queued.

        Call it on the event loop that serves the fake (the control endpoints do).
        """
        queue = self._running_queue()
        queued = 0
        for hook in hooks.all():
            if hook.disabled or event not in hook.settings:
                continue
            try:
                queue.put_nowait((hooks, hook.destination, body))
                queued += 1
            except asyncio.QueueFull:
                with self.lock:
                    self.dropped += 1
        return queued

    @property
    def pending(self) -> int:
        """Deliveries queued or being sent right now."""
        queued = self._queue.qsize() if self._queue is not None else 0
        return queued + self._sending

    def as_json(self, hooks: FakeWebhooks) -> dict[str, Any]:
        with self.lock:
            destinations = {url: s.as_json() for url, s in self.stats.items()}
        for url, item in destinations.items():
            hook = hooks.get(url)
            item["disabled"] = hook.disabled if hook is not None else None
        return {"pending": self.pending, "dropped": self.dropped, "destinations": destinations}

    # -- the background task -------------------------------------------------------------

    def _running_queue(self) -> asyncio.Queue[_Delivery]:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        return self._queue

    async def _run(self, queue: asyncio.Queue[_Delivery]) -> None:
        async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout) as client:
            while True:
                hooks, destination, body = await queue.get()
                self._sending += 1
                try:
                    if await self._deliver(client, destination, body):
                        with contextlib.suppress(KeyError):  # removed meanwhile
                            hooks.disable(destination)
                finally:
                    self._sending -= 1
                    queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, destination: str, body: bytes) -> bool:
        """POST once; True when this failure makes the destination one to disable."""
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
            "X-amoCRM-RequestId": str(uuid.uuid4()),
        }
        try:
            response = await client.post(destination, content=body, headers=headers)
            ok, result = 100 <= response.status_code <= 299, str(response.status_code)
        except httpx.TimeoutException:
            ok, result = False, "timeout"
        except httpx.HTTPError as exc:
            ok, result = False, f"error: {type(exc).__name__}"
        return self._record(destination, ok, result)

    def _record(self, destination: str, ok: bool, result: str) -> bool:
        now = self.clock()
        with self.lock:
            stats = self.stats.setdefault(destination, DestinationStats())
            stats.last_result = result
            if ok:
                stats.delivered += 1
                return False
            stats.failed += 1
            stats.recent_failures.append(now)
            while stats.recent_failures and stats.recent_failures[0] <= now - self.failure_window:
                stats.recent_failures.popleft()
            return len(stats.recent_failures) > self.failure_limit
