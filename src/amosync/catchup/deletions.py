"""Deletions from `/api/v4/events`: the one change a `filter[updated_at]` poll cannot see.

A deleted lead disappears from `GET /api/v4/leads`, so catch-up asks the events API for
`lead_deleted` (and contact/company) events instead. Restores are asked for too: when an
entity was deleted and restored within the window, the latest event wins, and a row that
was updated after the deletion event is left alone (the restore already brought it back).
The same calls ask for `lead_status_changed` (stage history, upsert/stage_history.py):
one more type in the filter, not one more call per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.amocrm.client import AmoClient, Params
from amosync.core.mapping import int_id
from amosync.core.stage_events import STAGE_CHANGED
from amosync.db.tables import companies, contacts, deals
from amosync.errors import RequestRejected
from amosync.inbox.superseded import settle_superseded
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.upsert import mark_deals_deleted, mark_people_deleted

EVENTS_LIMIT = 100  # amoCRM documents 100 for events (Kommo says 250): use the smaller
_TABLES: dict[str, Table] = {"lead": deals, "contact": contacts, "company": companies}
_ENTITIES = {"lead": "leads", "contact": "contacts", "company": "companies"}
DELETED_TYPES = tuple(f"{kind}_deleted" for kind in _TABLES)
RESTORED_TYPES = tuple(f"{kind}_restored" for kind in _TABLES)
_TRASH_TYPES = frozenset((*DELETED_TYPES, *RESTORED_TYPES))
# What catch-up asks the events API for: deletions, restores and stage changes.
CATCHUP_TYPES = (*DELETED_TYPES, *RESTORED_TYPES, STAGE_CHANGED)


@dataclass(frozen=True)
class Window:
    """A fixed `created_at` range and the page to read next. Events never change once
    written, so a fixed range gives stable pages whatever order amoCRM lists them in."""

    start: int
    end: int
    page: int = 1

    def as_json(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "page": self.page}

    @classmethod
    def from_json(cls, value: Any) -> Window | None:
        if not isinstance(value, dict):
            return None
        return cls(int(value["start"]), int(value["end"]), int(value.get("page", 1)))


@dataclass(frozen=True)
class EventsPage:
    events: list[dict[str, Any]]
    more: bool


async def fetch_events(
    client: AmoClient,
    window: Window,
    *,
    comma_range: bool = False,
    types: tuple[str, ...] = CATCHUP_TYPES,
) -> EventsPage | None:
    """One page of events of these types in the window.

    The docs show the range as `filter[created_at][from]`/`[to]`; older docs as
    `filter[created_at]=from,to` (which one the API takes today is not documented), so a
    caller whose bracket form is refused with 400 asks again with `comma_range`.
    """
    params: Params = [("filter[type][]", t) for t in types]
    if comma_range:
        params.append(("filter[created_at]", f"{window.start},{window.end}"))
    else:
        params.append(("filter[created_at][from]", window.start))
        params.append(("filter[created_at][to]", window.end))
    params += [("limit", EVENTS_LIMIT), ("page", window.page)]
    body = await client.get_json("/api/v4/events", params)
    if body is None:
        return None
    embedded = body.get("_embedded")
    items = embedded.get("events") if isinstance(embedded, dict) else None
    if not isinstance(items, list):
        raise RequestRejected("GET /api/v4/events: response has no _embedded.events", status=200)
    links = body.get("_links")
    more = isinstance(links, dict) and bool(links.get("next")) and bool(items)
    return EventsPage([e for e in items if isinstance(e, dict)], more)


async def apply_deletions(conn: AsyncConnection, events: Sequence[dict[str, Any]]) -> int:
    """Flag entities whose latest event here is a deletion; returns how many were flagged."""
    latest: dict[tuple[str, int], tuple[int, bool]] = {}
    for event in events:
        if event.get("type") not in _TRASH_TYPES:
            continue  # a stage change, read in the same call (upsert/stage_history.py)
        kind, entity_id, created = _parse(event)
        if kind is None or entity_id is None:
            continue
        deleted = event.get("type") in DELETED_TYPES
        seen = latest.get((kind, entity_id))
        # Later wins; within the same second a restore wins (the poll re-reads the entity).
        if seen is None or (created, not deleted) > (seen[0], not seen[1]):
            latest[(kind, entity_id)] = (created, deleted)
    flagged = 0
    now = datetime.now(UTC)
    for kind, table in _TABLES.items():
        wanted = {eid: at for (k, eid), (at, deleted) in latest.items() if k == kind and deleted}
        ids = await _not_updated_since(conn, table, wanted)
        if not ids:
            continue
        if table is deals:
            flagged += await mark_deals_deleted(conn, ids, now)
        else:
            flagged += await mark_people_deleted(conn, table, ids, now)
        # The deletion is the entity's latest state: failed events received before it
        # are settled (inbox/superseded.py).
        by_time: dict[int, list[int]] = {}
        for entity_id in ids:
            by_time.setdefault(wanted[entity_id], []).append(entity_id)
        for at, same_time in by_time.items():
            when = datetime.fromtimestamp(at, UTC)
            await settle_superseded(conn, _ENTITIES[kind], same_time, when)
    return flagged


async def _not_updated_since(
    conn: AsyncConnection, table: Table, deleted_at: dict[int, int]
) -> list[int]:
    """The ids whose stored row is not newer than their deletion event. A row dated beyond
    now plus the allowed skew (stored by an older version) is not newer than anything."""
    if not deleted_at:
        return []
    rows = await conn.execute(
        select(table.c.id, table.c.updated_at).where(table.c.id.in_(sorted(deleted_at)))
    )
    future = datetime.now(UTC).timestamp() + DEFAULT_MAX_CLOCK_SKEW
    newer = {
        int(row_id)
        for row_id, updated in rows.all()
        if updated is not None and deleted_at[int(row_id)] < updated.timestamp() <= future
    }
    return sorted(set(deleted_at) - newer)


def _parse(event: dict[str, Any]) -> tuple[str | None, int | None, int]:
    kind = event.get("entity_type")
    entity_id = event.get("entity_id")
    created = event.get("created_at")
    return (
        kind if isinstance(kind, str) and kind in _TABLES else None,
        int_id(entity_id),
        created if isinstance(created, int) else 0,
    )
