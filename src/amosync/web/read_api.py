"""The read API: deals (with their contacts), contacts and inbox events as JSON.

Other services read from here instead of spending amoCRM's API allowance. Every route needs
the admin bearer token (or a loopback client when none is configured); `/openapi.json`
describes them all (web/openapi.py, kept in step by a test that exercises it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from amosync.core.nul import NUL
from amosync.db.database import Database
from amosync.inbox.admin import MAX_LIST_LIMIT, check_status, get_event, list_events, retry_events
from amosync.web.access import AccessPolicy
from amosync.web.csrf import cross_site
from amosync.web.history_reads import deal_history
from amosync.web.params import MAX_ID, bounded_int, utc_datetime
from amosync.web.reads import (
    MAX_PAGE,
    DealFilter,
    contact_by_id,
    deal_by_id,
    deals_changed_since,
)
from amosync.web.reference_reads import all_users, pipelines_with_counts
from amosync.web.search import MAX_Q

DEFAULT_PAGE = 100
Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    """Bad input: answered 400 with this message."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def positive_id(raw: str, what: str) -> int:
    value = bounded_int(raw, 1, MAX_ID)
    if value is None:
        raise BadRequest(f"{what} must be a positive integer (at most {MAX_ID})")
    return value


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = bounded_int(raw, low, high)
    if value is None:
        raise BadRequest(f"{name} must be an integer between {low} and {high}")
    return value


def id_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    return None if raw is None else positive_id(raw, name)


def text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_Q:
        raise BadRequest(f"{name} must be 1 to {MAX_Q} characters")
    if NUL in raw:
        # PostgreSQL refuses it in a comparison; nothing stored holds one (core/nul.py).
        raise BadRequest(f"{name} must not contain NUL (%00)")
    return raw


def parse_since(raw: str) -> datetime:
    """ISO 8601; a time without offset is UTC. A `+` sent unencoded arrives as a space."""
    for candidate in (raw, raw[::-1].replace(" ", "+", 1)[::-1]):
        value = utc_datetime(candidate)
        if value is not None:
            return value
    raise BadRequest(
        "updated_since must be an ISO 8601 date-time between years 1 and 9999 in UTC, "
        "e.g. 2026-11-24T10:00:00Z (URL-encode +)"
    )


class ReadApi:
    def __init__(self, db: Database, access: AccessPolicy) -> None:
        self._db = db
        self._access = access

    def routes(self) -> list[Route]:
        deal_params = (
            "rentprog_id",
            "updated_since",
            "pipeline_id",
            "status_id",
            "responsible_user_id",
            "q",
            "limit",
            "cursor",
        )
        event_params = ("status", "limit", "before_id")
        return [
            Route("/api/deals", self._guard(self.list_deals, deal_params), methods=["GET"]),
            Route("/api/deals/{deal_id}", self._guard(self.get_deal), methods=["GET"]),
            Route("/api/deals/{deal_id}/history", self._guard(self.get_history), methods=["GET"]),
            Route("/api/pipelines", self._guard(self.list_pipelines), methods=["GET"]),
            Route("/api/users", self._guard(self.list_users), methods=["GET"]),
            Route("/api/contacts/{contact_id}", self._guard(self.get_contact), methods=["GET"]),
            Route("/api/events", self._guard(self.list_events, event_params), methods=["GET"]),
            Route("/api/events/{event_id}/retry", self._guard(self.retry_event), methods=["POST"]),
        ]

    def _guard(self, handler: Handler, params: tuple[str, ...] = ()) -> Handler:
        """Access check, then unknown query parameters refused (a typo such as
        `update_since` must not silently return every deal), then the handler."""

        async def guarded(request: Request) -> Response:
            verdict = self._access.check_api(request)
            if not verdict.allowed:
                return verdict.refusal()
            if request.method == "POST" and cross_site(request):
                return _error(403, "cross-site request refused")
            unknown = sorted(set(request.query_params) - set(params))
            if unknown:
                return _error(
                    400,
                    f"unknown query parameter(s): {', '.join(unknown)}; "
                    f"allowed: {', '.join(params) or 'none'}",
                )
            try:
                return await handler(request)
            except BadRequest as exc:
                return _error(400, str(exc))

        return guarded

    async def get_deal(self, request: Request) -> Response:
        deal_id = positive_id(request.path_params["deal_id"], "deal id")
        deal = await deal_by_id(self._db, deal_id)
        if deal is None:
            return _error(404, f"deal {deal_id} is not stored")
        return JSONResponse(deal)

    async def get_history(self, request: Request) -> Response:
        deal_id = positive_id(request.path_params["deal_id"], "deal id")
        history = await deal_history(self._db, deal_id, datetime.now(UTC))
        if history is None:
            return _error(404, f"deal {deal_id} is not stored")
        return JSONResponse(history)

    async def list_deals(self, request: Request) -> Response:
        params = request.query_params
        limit = int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        since_raw = params.get("updated_since")
        q = text_param(request, "q")
        if q is not None and not q.strip():
            raise BadRequest("q must contain a character other than spaces")
        which = DealFilter(
            since=parse_since(since_raw) if since_raw is not None else None,
            rentprog_id=text_param(request, "rentprog_id"),
            pipeline_id=id_param(request, "pipeline_id"),
            status_id=id_param(request, "status_id"),
            responsible_user_id=id_param(request, "responsible_user_id"),
            q=q.strip() if q is not None else None,
        )
        try:
            page = await deals_changed_since(self._db, which, limit, params.get("cursor"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return JSONResponse({"deals": page.deals, "next": page.next_cursor})

    async def list_pipelines(self, request: Request) -> Response:
        return JSONResponse({"pipelines": await pipelines_with_counts(self._db)})

    async def list_users(self, request: Request) -> Response:
        return JSONResponse({"users": await all_users(self._db)})

    async def get_contact(self, request: Request) -> Response:
        contact_id = positive_id(request.path_params["contact_id"], "contact id")
        contact = await contact_by_id(self._db, contact_id)
        if contact is None:
            return _error(404, f"contact {contact_id} is not stored")
        return JSONResponse(contact)

    async def list_events(self, request: Request) -> Response:
        status = request.query_params.get("status")
        try:
            check_status(status)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        limit = int_param(request, "limit", 50, 1, MAX_LIST_LIMIT)
        before_id = int_param(request, "before_id", 0, 1, MAX_ID) or None
        events = await list_events(self._db, status=status, limit=limit, before_id=before_id)
        more = len(events) == limit
        return JSONResponse(
            {
                "events": [e.as_json() for e in events],
                "next": events[-1].id if more and events else None,
            }
        )

    async def retry_event(self, request: Request) -> Response:
        event_id = positive_id(request.path_params["event_id"], "event id")
        retried = await retry_events(self._db, [event_id])
        if retried:
            return JSONResponse({"ok": True, "retried": retried})
        event = await get_event(self._db, event_id)
        if event is None:
            return _error(404, f"event {event_id} does not exist")
        return _error(409, f"event {event_id} is {event.status}; only failed events are retried")
