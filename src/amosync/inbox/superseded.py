"""Failed events whose entity has since been stored are settled `done`.

An event fails when its entity could not be fetched or stored for a while (amoCRM down,
a state from the future, a deletion not proven). Once a later answer of amoCRM for that
entity is stored (or its deletion proven), the copy is at least as new as the event asked
for, so the failure no longer means anything is missing: `doctor` and the status page would
warn about a deal that is in fact correct. The note in `last_error` keeps what happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Text, Update, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.tables import webhook_events as ev
from amosync.inbox.store import DONE, FAILED, padded_chunks


async def settle_superseded(
    conn: AsyncConnection, entity: str, ids: Iterable[int], fetched_at: datetime
) -> int:
    """Mark `done` the failed events about these entities received before `fetched_at` (when
    the answer now stored was requested); returns how many."""
    wanted = sorted(set(ids))
    if not wanted or (await conn.execute(_ANY_FAILED, {"a_entity": entity})).first() is None:
        # Usually nothing has failed: one probe of the status index instead of a look-up
        # per id on every batch.
        return 0
    note = (
        f"superseded: amoCRM's state requested at {fetched_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
        " UTC was stored; it failed with: "
    )
    settled = 0
    for chunk in padded_chunks(wanted):
        params = {
            "s_entity": entity,
            "s_fetched_at": fetched_at,
            "s_note": note,
            "s_now": datetime.now(UTC),
            **{f"s_id_{n}": i for n, i in enumerate(chunk)},
        }
        settled += (await conn.execute(_statement(len(chunk)), params)).rowcount
    return settled


_ANY_FAILED = (
    select(ev.c.id).where(ev.c.status == FAILED, ev.c.entity == bindparam("a_entity")).limit(1)
)


@cache
def _statement(size: int) -> Update:
    """One statement per power-of-two size, compiled once (like inbox/store.py's settle)."""
    ids = [bindparam(f"s_id_{n}", type_=ev.c.entity_id.type) for n in range(size)]
    return (
        update(ev)
        .where(
            ev.c.status == FAILED,
            ev.c.entity == bindparam("s_entity"),
            ev.c.entity_id.in_(ids),
            ev.c.received_at <= bindparam("s_fetched_at", type_=ev.c.received_at.type),
        )
        .values(
            status=DONE,
            processed_at=bindparam("s_now", type_=ev.c.processed_at.type),
            locked_by=None,
            last_error=func.substr(
                bindparam("s_note", type_=Text()).concat(func.coalesce(ev.c.last_error, "")),
                1,
                2000,
            ),
        )
    )
