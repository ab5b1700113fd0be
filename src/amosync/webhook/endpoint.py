"""POST /amocrm/{secret}: parse, store durably, answer. Nothing else happens here.

amoCRM waits 2 s and switches a webhook off after more than 100 failed deliveries in 2 h,
so this path makes no API calls: it parses the form body, hands one row per item to the
group-commit writer and answers 200 once they are committed (503 if they could not be).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from amosync import metrics
from amosync.core.events import ParsedWebhook
from amosync.core.webhook import WebhookParseError, parse_webhook
from amosync.errors import StorageUnavailable, WebhookRejected
from amosync.inbox.writer import GroupCommitWriter
from amosync.settings import Settings
from amosync.webhook.guard import check_content_type, check_secret, read_body
from amosync.webhook.rows import inbox_rows

log = logging.getLogger("amosync.webhook")

FORM = "application/x-www-form-urlencoded"
MAX_LOGGED_IDS = 20


def rejection(exc: WebhookRejected) -> Response:
    return JSONResponse({"ok": False, "error": exc.reason}, status_code=exc.status)


class WebhookReceiver:
    def __init__(self, settings: Settings, writer: GroupCommitWriter) -> None:
        self._writer = writer
        self._secret = (
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        )
        self._subdomain = settings.amocrm_subdomain
        self._account_id = settings.amocrm_account_id
        self._limit = settings.webhook_max_body_bytes

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            check_secret(request.path_params.get("secret"), self._secret)
            check_content_type(request, FORM)
            body = await read_body(request, self._limit)
            try:
                parsed = parse_webhook(body)
            except WebhookParseError as exc:
                raise WebhookRejected(400, exc.reason) from None
            self._check_account(parsed)
            request_id = request.headers.get("x-amocrm-requestid")
            rows = inbox_rows(
                parsed.items, now=datetime.now(UTC), source="webhook", request_id=request_id
            )
            await self._writer.write(rows)
            metrics.webhook_stored(parsed.items)
        except WebhookRejected as exc:
            metrics.webhook_rejected(exc.status)
            log.warning(
                "webhook_rejected",
                extra={"event": "webhook_rejected", "status": exc.status, "reason": exc.reason},
            )
            return rejection(exc)
        except StorageUnavailable as exc:
            metrics.webhook_not_stored()
            log.error(
                "webhook_not_stored", extra={"event": "webhook_not_stored", "error": str(exc)}
            )
            return JSONResponse(
                {"ok": False, "error": "storage unavailable, retry later"}, status_code=503
            )
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
        return JSONResponse({"ok": True, "stored": len(rows)})

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
