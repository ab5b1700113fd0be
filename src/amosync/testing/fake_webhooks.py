"""`/api/v4/webhooks` of the fake: the account's webhook subscriptions.

- `GET` lists them (`filter[destination]=<exact URL>` narrows to one); none → 204.
- `POST {"destination", "settings", "sort"}` creates or updates by destination and, like
  re-saving in amoCRM, re-enables a disabled one. Answers `post_status` (201 by default;
  set 200 to play the other documented variant). At most 100 per account.
- `DELETE {"destination"}` → 204; an unknown destination → 404.

`disable(url)` is the knob for what amoCRM does after more than 100 failed deliveries in
2 hours: the subscription stays listed with `"disabled": true` and nothing is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amosync.testing.fake_errors import json_response, problem, validation_error
from amosync.testing.fake_fields import DEFAULT_USER_ID

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

MAX_WEBHOOKS = 100
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Every event name the API accepts in `settings` (the ones amoCRM's docs list).
KNOWN_SETTINGS = frozenset(
    f"{action}_{entity}"
    for entity in ("lead", "contact", "company", "customer", "task", "talk", "unsorted")
    for action in ("add", "update", "delete", "restore", "status", "responsible", "note")
) | {"add_message", "add_chat_template_review"}


@dataclass
class FakeWebhook:
    id: int
    destination: str
    settings: list[str]
    sort: int
    created_at: int
    updated_at: int
    disabled: bool = False

    def as_json(self, account_id: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "destination": self.destination,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "account_id": account_id,
            "created_by": DEFAULT_USER_ID,
            "sort": self.sort,
            "disabled": self.disabled,
            "settings": list(self.settings),
        }


@dataclass
class FakeWebhooks:
    """The subscriptions, keyed by destination. Thread-safe: the server runs in a thread."""

    post_status: int = 201
    require_https: bool = True
    clock: Callable[[], float] = time.time
    by_destination: dict[str, FakeWebhook] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _next_id: int = field(default=4000001, init=False, repr=False)

    def subscribe(self, destination: str, settings: list[str], sort: int = 10) -> FakeWebhook:
        """Create, or update the settings of and re-enable, the subscription of `destination`."""
        now = int(self.clock())
        with self.lock:
            hook = self.by_destination.get(destination)
            if hook is None:
                if len(self.by_destination) >= MAX_WEBHOOKS:
                    raise OverflowError(f"at most {MAX_WEBHOOKS} webhooks per account")
                hook = FakeWebhook(self._next_id, destination, list(settings), sort, now, now)
                self._next_id += 1
                self.by_destination[destination] = hook
            else:
                hook.settings, hook.sort, hook.updated_at = list(settings), sort, now
                hook.disabled = False
            return hook

    def remove(self, destination: str) -> bool:
        with self.lock:
            return self.by_destination.pop(destination, None) is not None

    def disable(self, destination: str) -> None:
        """What amoCRM does after >100 failed deliveries in 2 hours (KeyError if unknown)."""
        with self.lock:
            self.by_destination[destination].disabled = True

    def get(self, destination: str) -> FakeWebhook | None:
        with self.lock:
            return self.by_destination.get(destination)

    def all(self) -> list[FakeWebhook]:
        with self.lock:
            return sorted(self.by_destination.values(), key=lambda h: h.id)


def webhooks_route(state: FakeAmoState) -> Route:
    hooks = state.webhooks

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return _list(hooks, request, state.account_id)
        body = await _json_body(request)
        if body is None:
            return problem(400, "Request data can not be empty")
        destination = body.get("destination")
        if not isinstance(destination, str) or not destination:
            return validation_error("destination", "This value should not be blank.", "NotBlank")
        if request.method == "DELETE":
            if not hooks.remove(destination):
                return problem(404, "Webhook not found")
            return Response(status_code=204)
        return _subscribe(hooks, body, destination, state.account_id)

    return Route("/api/v4/webhooks", endpoint, methods=["GET", "POST", "DELETE"])


def _list(hooks: FakeWebhooks, request: Request, account_id: int) -> Response:
    wanted = dict(parse_qsl(request.url.query)).get("filter[destination]")
    found = [h for h in hooks.all() if wanted is None or h.destination == wanted]
    if not found:
        return Response(status_code=204)
    with hooks.lock:
        items = [h.as_json(account_id) for h in found]
    return json_response({"_total_items": len(items), "_embedded": {"webhooks": items}})


def _subscribe(
    hooks: FakeWebhooks, body: dict[str, Any], destination: str, account_id: int
) -> Response:
    if hooks.require_https and not _https_or_loopback(destination):
        return validation_error("destination", "Destination must be an HTTPS URL", "InvalidUrl")
    settings = body.get("settings")
    if (
        not isinstance(settings, list)
        or not settings
        or not all(isinstance(s, str) and s in KNOWN_SETTINGS for s in settings)
    ):
        return validation_error("settings", "Unknown or empty settings", "NotSupportedChoice")
    sort = body.get("sort", 10)
    try:
        hook = hooks.subscribe(destination, settings, sort if isinstance(sort, int) else 10)
    except OverflowError as exc:
        return validation_error("destination", str(exc), "LimitExceeded")
    with hooks.lock:
        answer = hook.as_json(account_id)
    return json_response(answer, hooks.post_status)


def _https_or_loopback(destination: str) -> bool:
    """amoCRM sends only to HTTPS; the fake also to plain HTTP on this machine, so the guide
    can be tried locally. Any other plain-HTTP destination is refused as amoCRM would."""
    try:
        parts = urlsplit(destination)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and host in _LOOPBACK_HOSTS


async def _json_body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None
