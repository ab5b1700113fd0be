"""Everything the fake amoCRM knows: the account's data, tokens, knobs, faults and a request log.

Plain Python without I/O, so a test can set it up, run a client against the fake app and
then assert on what the "server" saw (`calls`, `max_calls_in_any_window`, `count_429`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from amosync.testing.fake_custom_fields import default_lead_fields
from amosync.testing.fake_delivery import FakeDeliveries
from amosync.testing.fake_entities import FakeEntities
from amosync.testing.fake_fields import DEFAULT_TOKEN
from amosync.testing.fake_oauth import FakeOAuth
from amosync.testing.fake_reference import FakeReference
from amosync.testing.fake_webhooks import FakeWebhooks

Verdict = Literal["ok", "blocked", "limited"]

RATE_WINDOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the fake saw it. `at` is `time.monotonic()` (or `state.clock`) on arrival.

    `status` is 0 when no response was sent (the client went away or the fake crashed).
    """

    at: float
    method: str
    path: str
    query: str
    status: int
    token_ok: bool


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted misbehaviour for the next matching request.

    `Fault(status=503)` answers 503 (after `delay` seconds) with the body a real account would
    send, or with `body` (dict/list → JSON, str/bytes → as is, typed `content_type`).
    `Fault(hang=5.0)` waits, then answers normally: use it to trip client timeouts.
    `retry_after` goes into a 429 body (default: the state's `retry_after_seconds`) and into a
    `Retry-After` header for other statuses; any JSON value (`1e9`, `"inf"`, an HTTP date)
    to test how a client bounds what it is told.
    """

    status: int = 500
    body: Any = None
    delay: float = 0.0
    retry_after: float | str | None = None
    hang: float | None = None
    content_type: str | None = None

    def __post_init__(self) -> None:
        if self.hang is None and not 400 <= self.status <= 599:
            raise ValueError(f"a fault answers with an error status, got {self.status}")


@dataclass(frozen=True, slots=True)
class _Scripted:
    fault: Fault
    path_prefix: str


@dataclass(kw_only=True)
class FakeAmoState(FakeEntities):
    """The fake account plus server behaviour. Every knob can be changed between requests."""

    tokens: set[str] = field(default_factory=lambda: {DEFAULT_TOKEN})
    # None switches the limiter off; the real API allows 7 requests per second.
    rate_limit_rps: int | None = 7
    retry_after_seconds: int = 1
    # The real header is undocumented; clients must read `retry_after` from the body.
    send_retry_after_header: bool = False
    # After this many 429s within `violation_window_seconds` every request gets 403.
    block_after_violations: int | None = None
    violation_window_seconds: float = 60.0
    block_seconds: float = 600.0
    ip_blocked_until: float | None = None
    latency_seconds: float = 0.0
    # List answers carry this many extra bytes (a `_padding` string, made 64 KiB at a time)
    # and are streamed without a Content-Length, as a proxy compressing on the fly sends them.
    answer_padding: int = 0
    clock: Callable[[], float] = time.monotonic
    requests: list[LoggedRequest] = field(default_factory=list)
    # `/oauth2/access_token`: codes, rotating refresh tokens, JWT access tokens with `exp`.
    oauth: FakeOAuth = field(default_factory=FakeOAuth)
    # `/api/v4/webhooks` subscriptions (knobs: `webhooks.disable(url)`, `post_status`).
    webhooks: FakeWebhooks = field(default_factory=FakeWebhooks)
    # Sending webhooks to those subscriptions (`/_fake/…` control actions trigger it).
    deliveries: FakeDeliveries = field(default_factory=FakeDeliveries)
    # `/api/v4/leads/custom_fields` definitions; the RentProg ID field is among them.
    lead_custom_fields: list[dict[str, Any]] = field(default_factory=default_lead_fields)
    # Pipelines/stages, users, contact and company fields, loss reasons (fake_reference.py).
    reference: FakeReference = field(default_factory=FakeReference)
    # Answers a plain account does not give, for the "deleted only on proof" rules:
    # ids written as JSON strings ("123") in list and single answers;
    string_ids: bool = False
    # ids list answers leave out while `GET /{kind}/{id}` still returns them (an entity the
    # token's user cannot see in lists, or an index lagging behind);
    hidden_from_lists: set[int] = field(default_factory=set)
    # id → the status (204 or 404) `GET /{kind}/{id}` answers instead of the entity.
    single_status: dict[int, int] = field(default_factory=dict)
    _faults: deque[_Scripted] = field(default_factory=deque, init=False, repr=False)
    _arrivals: deque[float] = field(default_factory=deque, init=False, repr=False)
    _violations: deque[float] = field(default_factory=deque, init=False, repr=False)

    # -- scripting -----------------------------------------------------------------------

    def script_faults(self, *faults: Fault, path_prefix: str = "/api/v4/") -> None:
        """Queue faults; each is used up by the next request whose path starts with the prefix."""
        with self.lock:
            self._faults.extend(_Scripted(f, path_prefix) for f in faults)

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def revoke_tokens(self) -> None:
        """Forget every token, as when the integration is uninstalled: all calls get 401."""
        with self.lock:
            self.tokens.clear()

    # -- used by the app for every request -----------------------------------------------

    def token_ok(self, authorization: str | None) -> bool:
        if authorization is None:
            return False
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        with self.lock:
            ok = scheme.lower() == "bearer" and token in self.tokens
        if ok and self.oauth.access_expired(token):
            return False
        if ok:
            self.oauth.access_used(token)  # ends the grace of the refresh token it replaced
        return ok

    def admit(self, now: float) -> Verdict:
        """Count an arrival against the IP block and the rate limit, like the real edge does.

        Rejected arrivals count too, so a client that keeps hammering stays limited.
        """
        with self.lock:
            if self.ip_blocked_until is not None and now < self.ip_blocked_until:
                return "blocked"
            if self.rate_limit_rps is None:
                return "ok"
            while self._arrivals and self._arrivals[0] <= now - RATE_WINDOW_SECONDS:
                self._arrivals.popleft()
            over = len(self._arrivals) >= self.rate_limit_rps
            self._arrivals.append(now)
            if not over:
                return "ok"
            self._violations.append(now)
            while self._violations[0] <= now - self.violation_window_seconds:
                self._violations.popleft()
            limit = self.block_after_violations
            if limit is not None and len(self._violations) >= limit:
                self.ip_blocked_until = now + self.block_seconds
                self._violations.clear()
            return "limited"

    def take_fault(self, path: str) -> Fault | None:
        """Pop the first queued fault whose prefix matches `path`, keeping the others' order."""
        with self.lock:
            for scripted in self._faults:
                if path.startswith(scripted.path_prefix):
                    self._faults.remove(scripted)
                    return scripted.fault
        return None

    def log_request(self, entry: LoggedRequest) -> None:
        with self.lock:
            self.requests.append(entry)

    # -- assertions ----------------------------------------------------------------------

    def calls(
        self, path_prefix: str | None = None, status: int | None = None
    ) -> list[LoggedRequest]:
        """Logged requests, optionally only those under a path prefix and/or with a status."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (path_prefix is None or r.path.startswith(path_prefix))
                and (status is None or r.status == status)
            ]

    def max_calls_in_any_window(self, window: float = 1.0, path_prefix: str | None = None) -> int:
        """The most requests that arrived within any `window` seconds (span strictly shorter).

        Uses the same boundary as the limiter: 7 arrivals spaced exactly 1/7 s apart plus an
        8th exactly 1 s after the first is 7, and the limiter lets all of them through.
        """
        times = sorted(r.at for r in self.calls(path_prefix))
        best, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= window:
                first += 1
            best = max(best, last - first + 1)
        return best

    def count_429(self) -> int:
        return len(self.calls(status=429))
