"""Inbox rows for webhook items: the only work the request path does besides parsing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from amosync.core.events import WebhookItem
from amosync.inbox.rows import event_row


def inbox_rows(
    items: Iterable[WebhookItem], *, now: datetime, source: str, request_id: str | None
) -> list[dict[str, Any]]:
    """One row per item. Kinds we do not sync are stored too, as `ignored`, so nothing a
    sender gave us disappears without a trace."""
    return [
        event_row(
            now=now,
            source=source,
            request_id=request_id,
            entity=item.entity,
            action=item.action,
            entity_id=item.entity_id,
            account_id=item.account_id,
            entity_updated_at=item.updated_at,
            payload=item.payload,
            synced=item.synced,
        )
        for item in items
    ]
