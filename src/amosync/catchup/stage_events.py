"""Storing the `lead_status_changed` events a page of `/api/v4/events` carried.

Catch-up (reconcile.py) and `backfill --history` (history.py) both read such pages. What
the events say is untrusted: core/stage_events.py keeps the usable ones, so an odd event
is skipped (and counted in the log) instead of failing the page it came in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from amosync.core.stage_events import STAGE_CHANGED, stage_changes
from amosync.db.clock import database_now
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.upsert.stage_history import record_events

if TYPE_CHECKING:  # a type only: SQL is the storage packages' (pyproject.toml)
    from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)


async def store_stage_events(
    conn: AsyncConnection,
    events: Sequence[dict[str, Any]],
    max_skew: float = DEFAULT_MAX_CLOCK_SKEW,
) -> int:
    """Store the stage changes among `events`; returns how many history rows are new."""
    typed = [e for e in events if e.get("type") == STAGE_CHANGED]
    if not typed:
        return 0
    limit = await database_now(conn) + timedelta(seconds=max_skew)
    changes = stage_changes(typed, limit)
    unusable = len(typed) - len(changes)
    if unusable:
        # Duplicates within a page count here too; both are harmless, neither is stored.
        log.info(
            "stage_events_skipped",
            extra={"event": "stage_events_skipped", "skipped": unusable, "read": len(typed)},
        )
    return await record_events(conn, changes)
