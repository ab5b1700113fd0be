"""A `lead_status_changed` event of `/api/v4/events` as one stage-history transition.

Event bodies are whatever the API (or something pretending to be it) sent: every field is
checked here, and an event that is not a usable transition becomes None, never an
exception, so one odd event cannot stop the catch-up run or the history backfill that read
it. What is usable, as amoCRM's API v4 documentation (events and notes) shows the event:

    {"id": "01h…", "type": "lead_status_changed", "entity_type": "lead", "entity_id": 123,
     "created_at": 1700000000, "created_by": 0,
     "value_before": [{"lead_status": {"id": 47000001, "pipeline_id": 7000001}}],
     "value_after":  [{"lead_status": {"id": 47000002, "pipeline_id": 7000001}}]}

The docs show `value_*` as a list of one object; a bare object is accepted too (the docs
are not consistent about such shapes elsewhere). An event without a `value_before` stage
is still a dated arrival in its `value_after` stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from amosync.core.mapping import epoch_to_datetime, int_id

STAGE_CHANGED = "lead_status_changed"
# Event ids are 26-character ULIDs. Anything else (much longer, or with characters such as
# NUL, which PostgreSQL refuses in text) is not one: it would bloat the unique index that
# deduplicates events, or fail the whole page's transaction.
_EVENT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


@dataclass(frozen=True, slots=True)
class StageChange:
    """One transition amoCRM recorded: the deal entered (pipeline_id, status_id)."""

    event_id: str
    deal_id: int
    pipeline_id: int | None
    status_id: int
    from_pipeline_id: int | None
    from_status_id: int | None
    changed_at: datetime
    changed_by: int | None  # 0 = a robot or the system


def stage_change(event: object, future_limit: datetime) -> StageChange | None:
    """The transition `event` records, or None when it is not a usable one (another type,
    a missing or malformed field, a time after `future_limit`)."""
    if not isinstance(event, dict) or event.get("type") != STAGE_CHANGED:
        return None
    event_id = event.get("id")
    kind = event.get("entity_type", "lead")
    deal_id = int_id(event.get("entity_id"))
    changed_at = epoch_to_datetime(event.get("created_at"))
    after = _stage(event.get("value_after"))
    if (
        not isinstance(event_id, str)
        or _EVENT_ID.fullmatch(event_id) is None
        or kind != "lead"
        or deal_id is None
        or deal_id <= 0
        or changed_at is None
        or changed_at > future_limit
        or after is None
        or after[1] is None
    ):
        return None
    before = _stage(event.get("value_before")) or (None, None)
    return StageChange(
        event_id=event_id,
        deal_id=deal_id,
        pipeline_id=after[0],
        status_id=after[1],
        from_pipeline_id=before[0],
        from_status_id=before[1],
        changed_at=changed_at,
        changed_by=int_id(event.get("created_by")),
    )


def stage_changes(events: list[Any], future_limit: datetime) -> list[StageChange]:
    """The usable transitions among `events`, each event id once."""
    found: dict[str, StageChange] = {}
    for event in events:
        change = stage_change(event, future_limit)
        if change is not None:
            found.setdefault(change.event_id, change)
    return list(found.values())


def _stage(value: object) -> tuple[int | None, int | None] | None:
    """(pipeline_id, status_id) of a `value_before`/`value_after`, or None."""
    items = value if isinstance(value, list) else [value]
    for item in items[:8]:  # the docs show one; a long list is not worth walking
        status = item.get("lead_status") if isinstance(item, dict) else None
        if isinstance(status, dict):
            return int_id(status.get("pipeline_id")), int_id(status.get("id"))
    return None
