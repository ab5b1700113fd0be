"""The worker's row in `amosync_workers`: proof of life and what it is doing, for /health."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import workers

RUNNING, REAUTH_REQUIRED, IP_BLOCKED, STOPPED = (
    "running",
    "reauth_required",
    "ip_blocked",
    "stopped",
)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerState:
    id: str = field(default_factory=new_worker_id)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: str = RUNNING
    detail: str | None = None
    processed: int = 0
    failed: int = 0


async def beat(
    db: Database,
    state: WorkerState,
    *,
    also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
) -> None:
    """Write the worker's row; `also` runs in the same transaction (the renewal of the
    events it holds, worker/claims.py), so a beat stays one commit."""
    now = datetime.now(UTC)
    row = {
        "id": state.id,
        "hostname": socket.gethostname()[:255],
        "pid": os.getpid(),
        "started_at": state.started_at,
        "last_seen": now,
        "state": state.state,
        "state_detail": state.detail,
        "processed": state.processed,
        "failed": state.failed,
    }
    async with db.write() as conn:
        stmt = upsert_insert(conn, workers).values(row)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[workers.c.id],
                set_={k: stmt.excluded[k] for k in row if k not in ("id", "started_at")},
            )
        )
        # Rows of workers gone for a day are history, not state.
        await conn.execute(delete(workers).where(workers.c.last_seen < now - timedelta(days=1)))
        if also is not None:
            await also(conn)


@dataclass(frozen=True)
class WorkerRow:
    id: str
    last_seen: datetime
    state: str
    detail: str | None
    processed: int
    failed: int


async def recent_workers(db: Database, within: timedelta) -> list[WorkerRow]:
    """Workers that reported within `within`, newest first."""
    since = datetime.now(UTC) - within
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                workers.c.id,
                workers.c.last_seen,
                workers.c.state,
                workers.c.state_detail,
                workers.c.processed,
                workers.c.failed,
            )
            .where(workers.c.last_seen >= since)
            .order_by(workers.c.last_seen.desc())
        )
        return [WorkerRow(*r) for r in rows.all()]
