"""POST /amocrm/process-webhook: the old internal API's endpoint, kept for n8n workflows.

It accepts JSON in three shapes:
- a lead as API v4 returns it, a list of them, or a list response (`_embedded.leads`): the
  sender already fetched it from amoCRM, so it is stored at once, without another API call,
  and recorded as a `done` event with source `n8n`;
- a decoded webhook body (`{"leads": {"update": [...]}, "account": {...}}`): it is queued
  exactly like a webhook, and the worker fetches the authoritative state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from amosync.core.mapping import MappingError, RentProgField, map_lead, map_lead_links
from amosync.core.nul import JSON_ESCAPED_NUL, without_nul
from amosync.core.webhook import WebhookParseError, items_from_decoded
from amosync.db.turns import write_transaction
from amosync.errors import StorageUnavailable, WebhookRejected
from amosync.inbox.store import DONE, append_rows
from amosync.inbox.writer import GroupCommitWriter
from amosync.settings import Settings
from amosync.upsert import replace_deal_links, upsert_deals
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
    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        writer: GroupCommitWriter,
        rentprog: RentProgField,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._rentprog = rentprog
        self._secret = (
            settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        )
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
                stored = await self._store_leads(leads)
                return JSONResponse({"ok": True, "stored": stored, "mode": "upserted"})
            if not isinstance(body, dict):
                raise WebhookRejected(400, "expected a lead, a lead list or a decoded webhook body")
            try:
                parsed = items_from_decoded(body)
            except WebhookParseError as exc:
                raise WebhookRejected(400, exc.reason) from None
            rows = inbox_rows(parsed.items, now=datetime.now(UTC), source="n8n", request_id=None)
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

    async def _store_leads(self, leads: list[dict[str, Any]]) -> int:
        try:
            records = [map_lead(obj, self._rentprog) for obj in leads]
            links = {obj["id"]: map_lead_links(obj) for obj in leads if _has_contacts(obj)}
        except MappingError as exc:
            raise WebhookRejected(400, f"lead cannot be stored: {exc}") from None
        now = datetime.now(UTC)
        events = [
            {
                "received_at": now,
                "source": "n8n",
                "request_id": None,
                "entity": "leads",
                "action": "push",
                "entity_id": r.id,
                "account_id": r.raw.get("account_id"),
                "entity_updated_at": r.raw.get("updated_at"),
                "payload": r.raw,
                "status": DONE,
                "attempts": 0,
                "processed_at": now,
                "available_at": now,
            }
            for r in records
        ]
        try:
            async with write_transaction(self._engine) as conn:
                await append_rows(conn, events)
                written = await upsert_deals(conn, records, now)
                # Links only when the sender fetched them (`with=contacts`); absent ≠ none.
                await replace_deal_links(
                    conn,
                    written & links.keys(),
                    [link for i in written & links.keys() for link in links[i]],
                )
        except SQLAlchemyError as exc:
            raise StorageUnavailable(str(exc)[:200]) from None
        log.info(
            "n8n_leads_stored",
            extra={"event": "n8n_leads_stored", "leads": len(records), "written": len(written)},
        )
        return len(records)


def _has_contacts(obj: dict[str, Any]) -> bool:
    embedded = obj.get("_embedded")
    return isinstance(embedded, dict) and isinstance(embedded.get("contacts"), list)
