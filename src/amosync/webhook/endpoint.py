"""POST /amocrm/{secret}: parse, store durably, answer. Nothing else happens here.

amoCRM waits 2 s and switches a webhook off after more than 100 failed deliveries in 2 h,
so this path makes no API calls: it parses the form body, hands one row per item to the
group-commit writer and answers 200 once they are committed (503 if they could not be).

It is a plain ASGI app working on the raw scope, reached through `WebhookFastPath`
(webhook/fast_path.py) before Starlette's routing: at thousands of requests per second the
router, `Request` and `JSONResponse` cost more CPU than the handler's own work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from amosync import metrics
from amosync.core.events import ParsedWebhook
from amosync.core.webhook import WebhookParseError, parse_webhook
from amosync.errors import StorageUnavailable, WebhookRejected
from amosync.inbox.rows import WEBHOOK
from amosync.inbox.writer import GroupCommitWriter
from amosync.settings import Settings
from amosync.webhook.guard import check_content_type, check_secret, read_body
from amosync.webhook.rows import inbox_rows

log = logging.getLogger("amosync.webhook")

FORM = "application/x-www-form-urlencoded"
MAX_LOGGED_IDS = 20
PATH = "/amocrm"
_PREFIX = PATH + "/"
_LEGACY_N8N_PATH = "/amocrm/process-webhook"  # the old n8n push, served by webhook/n8n.py
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Disconnected(Exception):
    """The sender hung up before its body arrived: nothing was stored, nobody to answer."""


class WebhookReceiver:
    """ASGI app for `POST /amocrm/{secret}` (and `POST /amocrm` when no secret is set)."""

    def __init__(self, settings: Settings, writer: GroupCommitWriter) -> None:
        self._writer = writer
        self._secret = settings.webhook_secret_text
        self._subdomain = settings.amocrm_subdomain
        self._account_id = settings.amocrm_account_id
        self._limit = settings.webhook_max_body_bytes

    def handles(self, path: str) -> bool:
        """Whether `path` (see `route_path`) is ours: the paths the Starlette routes in
        web/app.py match for this receiver (`{secret}` is one non-empty path segment)."""
        if path.startswith(_PREFIX):
            segment = path[len(_PREFIX) :]
            return bool(segment) and "/" not in segment and path != _LEGACY_N8N_PATH
        return path == PATH and self._secret is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As a Starlette route; the fast path (fast_path.py) calls `receive_at` directly."""
        await self.receive_at(route_path(scope), scope, receive, send)

    async def receive_at(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle the request, whose `route_path` the caller has already worked out."""
        started = time.perf_counter()
        given = path[len(_PREFIX) :] if path.startswith(_PREFIX) else None
        content_type, length, request_id = _headers(scope)
        try:
            check_secret(given, self._secret)
            check_content_type(content_type, FORM)
            body = await read_body(_chunks(receive), length, self._limit)
            try:
                parsed = parse_webhook(body)
            except WebhookParseError as exc:
                raise WebhookRejected(400, exc.reason) from None
            self._check_account(parsed)
            rows = inbox_rows(
                parsed.items, now=datetime.now(UTC), source=WEBHOOK, request_id=request_id
            )
            await self._writer.write(rows)
            metrics.webhook_stored(parsed.items)
        except _Disconnected:
            log.info("webhook_abandoned", extra={"event": "webhook_abandoned"})
            return
        except WebhookRejected as exc:
            metrics.webhook_rejected(exc.status)
            log.warning(
                "webhook_rejected",
                extra={"event": "webhook_rejected", "status": exc.status, "reason": exc.reason},
            )
            await _answer(send, exc.status, {"ok": False, "error": exc.reason})
            return
        except StorageUnavailable as exc:
            metrics.webhook_not_stored()
            log.error(
                "webhook_not_stored", extra={"event": "webhook_not_stored", "error": str(exc)}
            )
            await _answer(send, 503, {"ok": False, "error": "storage unavailable, retry later"})
            return
        if log.isEnabledFor(logging.INFO):
            log.info(
                "webhook_stored",
                extra={
                    "event": "webhook_stored",
                    "items": len(rows),
                    "kinds": ",".join(sorted({f"{i.entity}:{i.action}" for i in parsed.items})),
                    # Enough to find a deal's webhook in the logs; a huge body is cut short.
                    "ids": ",".join(str(i.entity_id) for i in parsed.items[:MAX_LOGGED_IDS]),
                    "request_id": request_id,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        await _answer(send, 200, {"ok": True, "stored": len(rows)})

    def _check_account(self, parsed: ParsedWebhook) -> None:
        """A webhook for another account is refused rather than mixed into our tables."""
        if (
            self._subdomain
            and parsed.account_subdomain
            and parsed.account_subdomain.lower() != self._subdomain
        ):
            raise WebhookRejected(403, "webhook is for another amoCRM account (subdomain mismatch)")
        if self._account_id and parsed.account_id and parsed.account_id != self._account_id:
            raise WebhookRejected(
                403, "webhook is for another amoCRM account (account id mismatch)"
            )


def route_path(scope: Scope) -> str:
    """The path without the ASGI `root_path` prefix, as Starlette's router sees it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """Content-Type, Content-Length and amoCRM's request id (the first of each), in one pass
    over the raw header list (ASGI servers give the names lower-cased)."""
    content_type = length = request_id = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = content_type or value.decode("latin-1")
        elif name == b"content-length":
            length = length or value.decode("latin-1")
        elif name == b"x-amocrm-requestid":
            request_id = request_id or value.decode("latin-1")
    return content_type, length, request_id


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
