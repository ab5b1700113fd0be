"""Operator access to the inbox: list events, show one, send failed ones back to the queue.

Shared by the CLI (`amosync events …`), the read API (`/api/events`) and the status page,
so all three agree on what "retry" means: a `failed` event becomes `pending` again with
its attempts reset, due at once. Events in any other state are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, update

from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.db.types import aware
from amosync.inbox.store import FAILED, PENDING, STATUSES, utcnow

MAX_LIST_LIMIT = 500


@dataclass(frozen=True, slots=True)
class EventView:
    """One inbox row as an operator sees it (the payload only in `show`)."""

    id: int
    received_at: datetime
    source: str
    entity: str
    action: str
    entity_id: int | None
    status: str
    attempts: int
    last_error: str | None
    processed_at: datetime | None
    available_at: datetime
    payload: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "source": self.source,
            "entity": self.entity,
            "action": self.action,
            "entity_id": self.entity_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "processed_at": self.processed_at.isoformat() if self.processed_at else None,
            "available_at": self.available_at.isoformat(),
        }
        if self.payload is not None:
            data["payload"] = self.payload
        return data


_COLUMNS = (
    ev.c.id,
    ev.c.received_at,
    ev.c.source,
    ev.c.entity,
    ev.c.action,
    ev.c.entity_id,
    ev.c.status,
    ev.c.attempts,
    ev.c.last_error,
    ev.c.processed_at,
    ev.c.available_at,
)


def check_status(status: str | None) -> str | None:
    """Validate a status filter; raises ValueError naming the allowed values."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of: {', '.join(STATUSES)}")
    return status


async def list_events(
    db: Database,
    *,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[EventView]:
    """Newest first; `before_id` pages backwards (keyset, stable under new arrivals)."""
    check_status(status)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    query = select(*_COLUMNS).order_by(ev.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(ev.c.status == status)
    if before_id is not None:
        query = query.where(ev.c.id < before_id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [_view(row._mapping) for row in rows]


async def get_event(db: Database, event_id: int) -> EventView | None:
    async with db.read() as conn:
        row = (
            await conn.execute(select(*_COLUMNS, ev.c.payload).where(ev.c.id == event_id))
        ).first()
    return None if row is None else _view(row._mapping, with_payload=True)


async def retry_events(db: Database, event_ids: Sequence[int]) -> list[int]:
    """Queue these failed events again; returns the ids that really were failed."""
    if not event_ids:
        return []
    return await _requeue(db, ev.c.id.in_(list(event_ids)))


async def retry_all_failed(db: Database) -> list[int]:
    return await _requeue(db, None)


async def _requeue(db: Database, extra: Any) -> list[int]:
    condition = ev.c.status == FAILED
    if extra is not None:
        condition = condition & extra
    async with db.write() as conn:
        ids = [int(i) for i in (await conn.scalars(select(ev.c.id).where(condition))).all()]
        if ids:
            await conn.execute(
                update(ev)
                .where(ev.c.id.in_(ids), ev.c.status == FAILED)
                .values(
                    status=PENDING,
                    attempts=0,
                    available_at=utcnow(),
                    processed_at=None,
                    locked_by=None,
                )
            )
    return sorted(ids)


def _view(m: RowMapping, *, with_payload: bool = False) -> EventView:
    return EventView(
        id=int(m["id"]),
        received_at=_required(aware(m["received_at"])),
        source=m["source"],
        entity=m["entity"],
        action=m["action"],
        entity_id=m["entity_id"],
        status=m["status"],
        attempts=int(m["attempts"]),
        last_error=m["last_error"],
        processed_at=aware(m["processed_at"]),
        available_at=_required(aware(m["available_at"])),
        payload=m["payload"] if with_payload else None,
    )


def _required(value: datetime | None) -> datetime:
    if value is None:  # NOT NULL columns: only a corrupt row gets here
        raise ValueError("event row without a timestamp")
    return value
