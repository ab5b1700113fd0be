"""The last verification's result in `amosync_state` (`verify.last`), for readers.

The value is the contract `/health` builds its check from:

    {"at": "<ISO-8601 UTC>", "checked": int, "diverged": int, "repaired": int,
     "unrepaired": int, "examples": [{"entity": "leads", "id": 1, "fields": ["name"]}, …]}

(examples capped at 10; a few more keys — `calls`, `source`, `changed_meanwhile`,
`unconfirmed` — are informative only.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.catchup.state import load, write_state
from amosync.db.database import Database

LAST_KEY = "verify.last"
_COUNTS = ("checked", "diverged", "repaired", "unrepaired")


async def read_last(db: Database) -> dict[str, Any] | None:
    """The last verification's result, or None when none ran (or the value is unusable)."""
    value = await load(db, LAST_KEY)
    if value is None or not all(isinstance(value.get(k), int) for k in _COUNTS):
        return None
    try:
        at = datetime.fromisoformat(str(value.get("at")))
    except ValueError:
        return None
    return value if at.tzinfo is not None else None


async def write_last(conn: AsyncConnection, result: dict[str, Any]) -> None:
    await write_state(conn, LAST_KEY, result)


def verify_line(last: dict[str, Any] | None, now: datetime | None = None) -> str:
    """`4 min ago: 250 checked, 2 diverged, 2 repaired` (+ `, 1 NOT repaired`)."""
    if not last:
        return "never ran"
    at = datetime.fromisoformat(str(last["at"]))
    minutes = ((now or datetime.now(UTC)) - at).total_seconds() / 60
    line = (
        f"{minutes:.0f} min ago: {last['checked']} checked, {last['diverged']} diverged, "
        f"{last['repaired']} repaired"
    )
    if last.get("unrepaired"):
        line += f", {last['unrepaired']} NOT repaired"
    return line
