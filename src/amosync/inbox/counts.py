"""Counts of inbox events that other parts read (catch-up's budget, doctor).

They live here, beside the queue, so no package outside the storage layer writes SQL on
`amocrm_webhook_events`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.inbox.store import FAILED, PENDING


async def due_count(db: Database) -> int:
    """Events waiting for the worker right now (pending and available)."""
    async with db.read() as conn:
        n = await conn.scalar(
            select(func.count())
            .select_from(ev)
            .where(ev.c.status == PENDING, ev.c.available_at <= datetime.now(UTC))
        )
    return int(n or 0)


async def failed_count(conn: AsyncConnection) -> int:
    """Events that ran out of attempts (`status = failed`)."""
    n = await conn.scalar(select(func.count()).select_from(ev).where(ev.c.status == FAILED))
    return int(n or 0)
