"""A fake amoCRM API v4 as a Starlette app, backed by a `FakeAmoState`.

Tests reach it in-process through `httpx.ASGITransport(app=create_fake_amocrm(state))`, or
on a real port through `run_fake_in_thread`. Every request first passes `_Gate`, which does
what amoCRM's edge does before the API sees a request: IP block (403), rate limit (429),
then scripted faults, latency and the bearer token check (401).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from amosync.testing.fake_account import account_body
from amosync.testing.fake_consent import consent_route
from amosync.testing.fake_control import control_routes
from amosync.testing.fake_custom_fields import lead_custom_fields_route
from amosync.testing.fake_errors import (
    HAL_JSON,
    PROBLEM_JSON,
    dump_json,
    error_response,
    json_response,
    problem,
    validation_error,
)
from amosync.testing.fake_events import events_route
from amosync.testing.fake_oauth import token_endpoint as oauth_token_endpoint
from amosync.testing.fake_query import QueryError, page_href, parse_list_query, parse_with
from amosync.testing.fake_reference import reference_routes
from amosync.testing.fake_render import KINDS, Kind, render, render_stub
from amosync.testing.fake_state import FakeAmoState, Fault, LoggedRequest
from amosync.testing.fake_webhooks import webhooks_route

Endpoint = Callable[[Request], Awaitable[Response]]

API_PREFIX = "/api/v4/"
_ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def create_fake_amocrm(state: FakeAmoState) -> Starlette:
    """The fake API. Requests change and are recorded in `state`, which the test keeps."""
    routes: list[BaseRoute] = [Route("/api/v4/account", _account(state), methods=["GET"])]
    routes.append(webhooks_route(state))
    routes.append(lead_custom_fields_route(state))
    routes.extend(reference_routes(state))
    for kind in KINDS:
        routes.append(Route(f"/api/v4/{kind}", _list(state, kind), methods=["GET"]))
        routes.append(Route(f"/api/v4/{kind}/{{id:int}}", _single(state, kind), methods=["GET"]))
    # Later endpoints (/api/v4/events, /api/v4/webhooks, /oauth2/access_token) go above this
    # catch-all; the gate already treats every path outside /api/v4/ as token-free.
    routes.append(events_route(state.events))
    routes.append(Route("/oauth2/access_token", oauth_token_endpoint(state), methods=["POST"]))
    routes.append(consent_route(state))  # the consent page `amosync auth url` leads to
    routes.extend(control_routes(state))  # `/_fake/…`: what a person does in amoCRM's UI
    routes.append(Route("/{rest:path}", _not_found, methods=_ALL_METHODS))
    return Starlette(routes=routes, middleware=[Middleware(_Gate, state=state)])


class _Gate:
    """Pure ASGI middleware: admission, faults, latency, auth, and the request log."""

    def __init__(self, app: ASGIApp, state: FakeAmoState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        arrival = state.clock()
        path: str = scope["path"]
        token_ok = state.token_ok(Headers(scope=scope).get("authorization"))
        status = 0

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            response = await self._intercept(path, token_ok, arrival)
            if response is None:
                await self.app(scope, receive, send_recording)
            else:
                await response(scope, receive, send_recording)
        finally:
            query = scope["query_string"].decode("latin-1")
            entry = LoggedRequest(arrival, scope["method"], path, query, status, token_ok)
            state.log_request(entry)

    async def _intercept(self, path: str, token_ok: bool, arrival: float) -> Response | None:
        state = self.state
        if path.startswith("/_fake/"):
            return None  # the fake's control panel is "the UI": no API limits, faults or token
        verdict = state.admit(arrival)
        if state.latency_seconds > 0:
            await asyncio.sleep(state.latency_seconds)
        if verdict == "blocked":
            return problem(403)
        if verdict == "limited":
            return error_response(
                429,
                retry_after=state.retry_after_seconds,
                send_retry_after_header=state.send_retry_after_header,
            )
        fault = state.take_fault(path)
        if fault is not None:
            if fault.hang is not None:
                await asyncio.sleep(fault.hang)
            else:
                await asyncio.sleep(fault.delay)
                return _fault_response(fault, state)
        if path.startswith(API_PREFIX) and not token_ok:
            return problem(401)
        return None


def _fault_response(fault: Fault, state: FakeAmoState) -> Response:
    retry_after = fault.retry_after
    if retry_after is None and fault.status == 429:
        retry_after = state.retry_after_seconds
    if fault.body is None:
        return error_response(
            fault.status,
            retry_after=retry_after,
            send_retry_after_header=state.send_retry_after_header,
        )
    headers = {}
    if retry_after is not None and (fault.status != 429 or state.send_retry_after_header):
        headers["Retry-After"] = str(retry_after)
    if isinstance(fault.body, str | bytes):
        media_type = fault.content_type or "text/plain"
        return Response(fault.body, fault.status, headers=headers, media_type=media_type)
    return json_response(fault.body, fault.status, fault.content_type or PROBLEM_JSON, headers)


def _origin(request: Request) -> str:
    # Links point back at whatever host the client used, so `next` works on a real port too.
    return str(request.base_url).rstrip("/")


def _list(state: FakeAmoState, kind: Kind) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        raw = request.url.query
        try:
            query = parse_list_query(raw)
        except QueryError as error:
            if error.status == 400:
                return validation_error(error.path, error.detail)
            return problem(error.status, error.detail)
        rows = [e for e in state.select(kind, query) if e.id not in state.hidden_from_lists]
        start = (query.page - 1) * query.limit
        chunk = rows[start : start + query.limit]
        if not chunk:
            # The real API answers an empty page with 204 and no body, never `200 []`.
            return Response(status_code=204)
        origin = _origin(request)
        ctx = state.render_context(origin, raw, query.with_)
        draw = render_stub if "only_deleted" in query.with_ else render
        with state.lock:
            items = [_ids_as_sent(state, draw(entity, ctx)) for entity in chunk]
        here = f"{origin}{request.url.path}"
        links = {"self": {"href": page_href(here, query.pairs, query.page, query.limit)}}
        if start + query.limit < len(rows):
            links["next"] = {"href": page_href(here, query.pairs, query.page + 1, query.limit)}
        body = {"_page": query.page, "_links": links, "_embedded": {kind: items}}
        if state.answer_padding:
            return StreamingResponse(_padded(state, dump_json(body)), media_type=HAL_JSON)
        return json_response(body)

    return endpoint


def _single(state: FakeAmoState, kind: Kind) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        raw = request.url.query
        with_ = parse_with(raw)
        entity_id = request.path_params["id"]
        scripted = state.single_status.get(entity_id)
        if scripted == 404:
            return problem(404, f"Cannot GET {_origin(request)}{request.url.path}")
        if scripted is not None:
            return Response(status_code=scripted)
        entity = state.table(kind).get(entity_id)
        wants_trash = "only_deleted" in with_
        if entity is None or entity.is_deleted != wants_trash:
            # A missing or trashed entity is "no content", not 404 (as amoCRM answers it).
            return Response(status_code=204)
        ctx = state.render_context(_origin(request), raw, with_)
        with state.lock:
            body = render_stub(entity, ctx) if wants_trash else render(entity, ctx)
        return json_response(_ids_as_sent(state, body))

    return endpoint


def _ids_as_sent(state: FakeAmoState, body: dict[str, Any]) -> dict[str, Any]:
    """The entity's id as a JSON string when the state says so (`string_ids`)."""
    if state.string_ids:
        body["id"] = str(body["id"])
    return body


def _account(state: FakeAmoState) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        with_ = parse_with(request.url.query)
        body = account_body(
            state.account_id, state.account_name, state.subdomain, _origin(request), with_
        )
        return json_response(body)

    return endpoint


async def _not_found(request: Request) -> Response:
    # Real 404s name the method and URL (tests/data/api_error_404_kommo_docs.json).
    return problem(404, f"Cannot {request.method} {_origin(request)}{request.url.path}")


_PIECE = 65_536


async def _padded(state: FakeAmoState, body: bytes) -> AsyncIterator[bytes]:
    """`body` with a `_padding` string of `state.answer_padding` bytes in front, made and sent
    one piece at a time."""
    left = state.answer_padding
    piece = b'{"_padding":"'
    while piece:
        yield piece
        if left > 0:
            piece = b"x" * min(left, _PIECE)
            left -= len(piece)
        else:
            piece, body = (b'",' + body[1:], b"") if body else (b"", b"")
