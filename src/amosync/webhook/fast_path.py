"""Webhook requests skip Starlette's routing: a pure ASGI middleware in front of the router.

A `POST /amocrm/{secret}` goes straight to `WebhookReceiver`; everything else (other paths,
other methods, so a `GET` still gets the router's 405) continues to the app. Measured under
wrk at 50 connections, the router, `Request`, `JSONResponse` and the exception middleware
took about a quarter of `serve`'s main-thread time per webhook (docs/performance-history.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from amosync.webhook.endpoint import WebhookReceiver, route_path


class WebhookFastPath:
    def __init__(self, app: ASGIApp, receiver: WebhookReceiver) -> None:
        self._app = app
        self._receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = route_path(scope)  # once per request: the receiver is handed it
            if self._receiver.handles(path):
                await self._receiver.receive_at(path, scope, receive, send)
                return
        await self._app(scope, receive, send)
