"""Inbox rows for webhook items: the only work the request path does besides parsing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from amosync.core.events import WebhookItem
from amosync.db.tables import webhook_events
from amosync.inbox.store import IGNORED, PENDING


def _width(column: str) -> int:
    length = getattr(webhook_events.c[column].type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"amocrm_webhook_events.{column} has no length")
    return length


# The sender chooses these strings; PostgreSQL refuses one longer than its column, and with
# it every webhook of the same group commit (503 on each redelivery). Cut, not refused:
# anything a sender gave us is kept. No amoCRM entity or action name comes near 32.
_REQUEST_ID, _ENTITY, _ACTION = _width("request_id"), _width("entity"), _width("action")


def inbox_rows(
    items: Iterable[WebhookItem], *, now: datetime, source: str, request_id: str | None
) -> list[dict[str, Any]]:
    """One row per item. Kinds we do not sync are stored too, as `ignored`, so nothing a
    sender gave us disappears without a trace."""
    return [
        {
            "received_at": now,
            "source": source,
            "request_id": request_id[:_REQUEST_ID] if request_id else request_id,
            "entity": item.entity[:_ENTITY],
            "action": item.action[:_ACTION],
            "entity_id": item.entity_id,
            "account_id": item.account_id,
            "entity_updated_at": item.updated_at,
            "payload": item.payload,
            "status": PENDING if item.synced else IGNORED,
            "attempts": 0,
            "last_error": None,
            "processed_at": None if item.synced else now,
            "available_at": now,
            "locked_by": None,
        }
        for item in items
    ]
