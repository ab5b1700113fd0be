"""The status page's deal view (`/?deal=ID`): one deal as the read API gives it, its stage
timeline, and its custom fields as text an operator reads, times in AMOSYNC_TIMEZONE.

Dates: amoCRM stores a date field (date, birthday) as the midnight that starts the day in
the account's zone (a Moscow 12 June is 11 June 21:00 UTC), so it is shown as the day it
falls on in AMOSYNC_TIMEZONE, without a time; a date-time field as a time in that zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any

from amosync.db.database import Database
from amosync.l10n.zone import local_when
from amosync.web.history_reads import deal_history
from amosync.web.reads import deal_by_id

_DAY_TYPES = frozenset({"date", "birthday"})


async def deal_context(db: Database, deal_id: int) -> dict[str, Any]:
    """`deal` (None when not stored) and its `history` for the template."""
    deal = await deal_by_id(db, deal_id)
    history = await deal_history(db, deal_id, datetime.now(UTC)) if deal else None
    return {"deal": deal, "history": history, "deal_asked": deal_id}


def field_text(zone: tzinfo, yes_no: tuple[str, str]) -> Callable[[dict[str, Any]], str]:
    """A field entry of the read API (`value` or `values`) as one line of text."""

    def one(value: Any, kind: str | None) -> str:
        if isinstance(value, bool):
            return yes_no[0] if value else yes_no[1]
        if kind in _DAY_TYPES or kind == "date_time":
            try:
                at = datetime.fromisoformat(str(value))
            except ValueError:
                return str(value)
            if kind in _DAY_TYPES:
                return at.astimezone(zone).date().isoformat()
            return local_when(at, zone)
        return "—" if value is None else str(value)

    def text(entry: dict[str, Any]) -> str:
        kind = entry.get("type")
        if "values" in entry:
            return ", ".join(one(v, kind) for v in entry["values"])
        return one(entry.get("value"), kind)

    return text
