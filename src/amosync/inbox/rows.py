"""The one way to make an inbox row (`amocrm_webhook_events`), whoever queues the event.

Webhooks, n8n pushes, the worker's unknown contacts and catch-up's left-out entities all
queue work the same way; building every row here keeps the columns and their meaning in
one place (a new column is added once, not in five hand-written dicts).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.tables import webhook_events as ev
from amosync.inbox.store import FAILED, IGNORED, PENDING, append_rows

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


async def append_failed_once(conn: AsyncConnection, row: Mapping[str, Any]) -> None:
    """Insert a failed event unless one for the same entity fails with the same reason
    already: a cause met on every run (an answer over the size cap) is recorded once."""
    same = and_(
        ev.c.entity == row["entity"],
        ev.c.entity_id == row["entity_id"]
        if row["entity_id"] is not None
        else ev.c.entity_id.is_(None),
        ev.c.status == FAILED,
        ev.c.last_error == row["last_error"],
    )
    if not await conn.scalar(select(exists().where(same))):
        await append_rows(conn, [row])
