"""The one way to make an inbox row (`amocrm_webhook_events`), whoever queues the event.

Webhooks, n8n pushes, the worker's unknown contacts and catch-up's left-out entities all
queue work the same way; building every row here keeps the columns and their meaning in
one place (a new column is added once, not in five hand-written dicts).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from amosync.inbox.store import IGNORED, PENDING

# Who queued the event (the `source` column).
WEBHOOK, N8N, WORKER = "webhook", "n8n", "worker"


def event_row(
    *,
    now: datetime,
    source: str,
    entity: str,
    action: str,
    entity_id: int | None,
    payload: Mapping[str, Any],
    account_id: int | None = None,
    entity_updated_at: int | None = None,
    request_id: str | None = None,
    synced: bool = True,
) -> dict[str, Any]:
    """A row for the worker to process now (`pending`), or, for a kind we do not sync
    (`synced=False`), one kept as `ignored` so nothing a sender gave us disappears."""
    return {
        "received_at": now,
        "source": source,
        "request_id": request_id,
        "entity": entity,
        "action": action,
        "entity_id": entity_id,
        "account_id": account_id,
        "entity_updated_at": entity_updated_at,
        "payload": payload,
        "status": PENDING if synced else IGNORED,
        "attempts": 0,
        "last_error": None,
        "processed_at": None if synced else now,
        "available_at": now,
        "locked_by": None,
    }
