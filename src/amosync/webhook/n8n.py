"""POST /amocrm/process-webhook: the old internal API's endpoint, kept for n8n workflows.

It accepts JSON in three shapes:
- a lead as API v4 returns it, a list of them, or a list response (`_embedded.leads`);
- a decoded webhook body (`{"leads": {"update": [...]}, "account": {...}}`).

Either way it is a hint, like a webhook: the lead ids are queued as events (source `n8n`)
and the worker fetches each lead from amoCRM, batched with everything else. Pushed content
is never stored as a deal: a push carrying a wrong or far-future `updated_at` would win
newer-wins for ever, and nothing later could repair the row. The answers are unchanged
(`"mode": "upserted"` for lead bodies, `"queued"` for webhook bodies), so existing
workflows keep working; the deal appears once the worker has fetched it (usually within
a second).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from amosync.core.mapping import int_id
from amosync.core.nul import JSON_ESCAPED_NUL, without_nul
from amosync.core.webhook import WebhookParseError, items_from_decoded
from amosync.errors import StorageUnavailable, WebhookRejected
from amosync.inbox.rows import N8N, event_row
from amosync.inbox.writer import GroupCommitWriter
from amosync.settings import Settings
from amosync.webhook.guard import check_content_type, check_secret, read_body
from amosync.webhook.rows import inbox_rows

log = logging.getLogger("amosync.webhook")

MAX_LEADS = 250


def leads_in(body: Any) -> list[dict[str, Any]] | None:
    """The lead objects in a pushed body, or None when it is not a lead-shaped body."""
    candidates: Any
    if isinstance(body, list):
        candidates = body
    elif (
        isinstance(body, dict)
        and isinstance(body.get("_embedded"), dict)
        and "leads" in body["_embedded"]
    ):
        candidates = body["_embedded"]["leads"]
    elif isinstance(body, dict) and "id" in body and "pipeline_id" in body:
        candidates = [body]
    else:
        return None
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise WebhookRejected(400, "leads must be JSON objects")
    if not candidates:
        raise WebhookRejected(400, "no leads in body")
    if len(candidates) > MAX_LEADS:
        raise WebhookRejected(413, f"more than {MAX_LEADS} leads in one push")
    return candidates


def rejection(exc: WebhookRejected) -> Response:
    return JSONResponse({"ok": False, "error": exc.reason}, status_code=exc.status)


class N8nReceiver:
    def __init__(self, settings: Settings, writer: GroupCommitWriter) -> None:
        self._writer = writer
        self._secret = settings.webhook_secret_text
        self._limit = settings.webhook_max_body_bytes

    async def handle(self, request: Request) -> Response:
        try:
            given = request.headers.get("x-amosync-secret") or request.query_params.get("secret")
            check_secret(given, self._secret)
            check_content_type(request.headers.get("content-type"), "application/json")
            raw = await read_body(
                request.stream(), request.headers.get("content-length"), self._limit
            )
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise WebhookRejected(400, f"body is not valid JSON ({exc.msg})") from None
            if JSON_ESCAPED_NUL in raw:  # amoCRM's data, stored as an API answer would be
                body = without_nul(body)
            leads = leads_in(body)
            if leads is not None:
                # "upserted" as before, for workflows that check it: the lead is fetched.
                stored = await self._queue_leads(leads)
                return JSONResponse({"ok": True, "stored": stored, "mode": "upserted"})
            if not isinstance(body, dict):
                raise WebhookRejected(400, "expected a lead, a lead list or a decoded webhook body")
            try:
                parsed = items_from_decoded(body)
            except WebhookParseError as exc:
                raise WebhookRejected(400, exc.reason) from None
            rows = inbox_rows(parsed.items, now=datetime.now(UTC), source=N8N, request_id=None)
            await self._writer.write(rows)
            return JSONResponse({"ok": True, "stored": len(rows), "mode": "queued"})
        except WebhookRejected as exc:
            log.warning(
                "n8n_rejected",
                extra={"event": "n8n_rejected", "status": exc.status, "reason": exc.reason},
            )
            return rejection(exc)
        except StorageUnavailable as exc:
            log.error("n8n_not_stored", extra={"event": "n8n_not_stored", "error": str(exc)})
            return JSONResponse(
                {"ok": False, "error": "storage unavailable, retry later"}, status_code=503
            )

    async def _queue_leads(self, leads: list[dict[str, Any]]) -> int:
        """Queue each pushed lead's id for the worker to fetch; the content is not stored."""
        now = datetime.now(UTC)
        rows = []
        for obj in leads:
            lead_id = int_id(obj.get("id"))
            if lead_id is None:
                raise WebhookRejected(400, f"lead id is not an integer: {obj.get('id')!r:.40}")
            rows.append(
                event_row(
                    now=now,
                    source=N8N,
                    entity="leads",
                    action="push",
                    entity_id=lead_id,
                    account_id=int_id(obj.get("account_id")),
                    entity_updated_at=int_id(obj.get("updated_at")),
                    payload=obj,
                )
            )
        await self._writer.write(rows)
        log.info("n8n_leads_queued", extra={"event": "n8n_leads_queued", "leads": len(rows)})
        return len(rows)
