"""Counts over every row kept (events done and ignored, deals, contacts, companies), and a
per-process cache of them for pages asked for every second.

These counts read a whole index: with 1,000,000 events stored, 55 ms on SQLite, 160 ms on
PostgreSQL on a quiet host, 170-250 ms on a busy 2-core one. The status page refreshes every
10 s per browser (every second on a wall screen), so five browsers spent a core on counting
what changes by a few hundred a minute. The page takes them from this cache instead: exact
counts, at most `max_age` seconds old, recounted by the one request that finds them stale
(the others meanwhile use the old ones). Events finished since the count are added on
every request from a range of the partial `processed_at` index (migration 0008), so `done`
and `ignored` move as soon as the worker settles an event, without a recount. What the
operator acts on is counted on every request from its own index range, whose size follows
the backlog or the failures, not the events kept: pending (with the oldest), failed, the
last webhook (inbox/store.py `live`).

`amosync status` and `/metrics` count afresh each time (`collect_stats` without a max age).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select

from amosync.db.database import Database
from amosync.db.tables import companies, contacts, deals
from amosync.db.tables import webhook_events as ev
from amosync.db.types import aware

# How old the status page's totals may be.
PAGE_TOTALS_MAX_AGE = 60.0


@dataclass(frozen=True, slots=True)
class Totals:
    events_by_status: dict[str, int]  # every status, as counted (pending and failed included)
    deals: int
    deals_with_rentprog_id: int
    deals_deleted: int
    contacts: int
    companies: int
    # The newest processed_at in the counted snapshot: events finished after it are not in
    # `events_by_status` yet (None: nothing was finished then).
    processed_through: datetime | None = None


async def count_totals(db: Database) -> Totals:
    """Everything counted now, in one read transaction (one snapshot)."""
    async with db.read() as conn:
        grouped = await conn.execute(select(ev.c.status, func.count()).group_by(ev.c.status))
        by_status = {str(status): int(n) for status, n in grouped.all()}
        through = await conn.scalar(
            select(func.max(ev.c.processed_at)).where(ev.c.processed_at.is_not(None))
        )
        n_deals = await conn.scalar(select(func.count()).select_from(deals))
        with_rp = await conn.scalar(
            select(func.count())
            .select_from(deals)
            .where(deals.c.rentprog_id.is_not(None), ~deals.c.is_deleted)
        )
        deleted = await conn.scalar(
            select(func.count()).select_from(deals).where(deals.c.is_deleted)
        )
        n_contacts = await conn.scalar(select(func.count()).select_from(contacts))
        n_companies = await conn.scalar(select(func.count()).select_from(companies))
    return Totals(
        by_status,
        int(n_deals or 0),
        int(with_rp or 0),
        int(deleted or 0),
        int(n_contacts or 0),
        int(n_companies or 0),
        aware(through),
    )


async def with_recently_finished(db: Database, kept: Totals) -> Totals:
    """`kept` plus the events finished since it was counted (an index range, not a scan)."""
    if kept.processed_through is None:
        return kept
    async with db.read() as conn:
        rows = await conn.execute(
            select(ev.c.status, func.count(), func.max(ev.c.processed_at))
            .where(ev.c.processed_at > kept.processed_through)
            .group_by(ev.c.status)
        )
        recent = rows.all()
    if not recent:
        return kept
    by_status = dict(kept.events_by_status)
    for status, n, _ in recent:
        by_status[str(status)] = by_status.get(str(status), 0) + int(n)
    return replace(kept, events_by_status=by_status)


class CachedTotals:
    """One engine's totals, recounted when older than the caller allows."""

    def __init__(self) -> None:
        self._totals: Totals | None = None
        self._counted_at = 0.0  # time.monotonic()
        self._recounting = False

    async def get(self, db: Database, max_age: float) -> Totals:
        stale = time.monotonic() - self._counted_at > max_age
        if self._totals is not None and (not stale or self._recounting):
            return self._totals  # a recount is under way: the last counts meanwhile
        self._recounting = True
        try:
            self._totals = await count_totals(db)
            self._counted_at = time.monotonic()
        finally:
            self._recounting = False
        return self._totals


_BY_DATABASE: weakref.WeakKeyDictionary[Database, CachedTotals] = weakref.WeakKeyDictionary()


async def totals(db: Database, max_age: float | None = None) -> Totals:
    """The totals, counted now (`max_age` None) or from this process's cache."""
    if max_age is None:
        return await count_totals(db)
    cache = _BY_DATABASE.get(db)
    if cache is None:
        cache = _BY_DATABASE[db] = CachedTotals()
    return await with_recently_finished(db, await cache.get(db, max_age))
