"""`amosync backfill`: the first full load of leads, contacts and companies, on request only.

Walks each list in `order[created_at]=asc` (created_at never changes, so the keyset walk is
stable) and upserts every page through the worker's path. Each page commits together with
the cursor in `amosync_state`, so an interrupted backfill (Ctrl-C, crash, spent budget)
continues where it stopped when run again. It spends from the same hourly budget as
catch-up and steps aside while the webhook backlog is large; by default it waits for the
budget instead of stopping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete

from amosync.amocrm.client import AmoClient
from amosync.catchup.budget import BACKFILL, ApiBudget
from amosync.catchup.pacing import Pacer, Waiting
from amosync.catchup.pages import ENTITIES, Cursor, fetch_page, store_page
from amosync.catchup.reconcile import CatchupBusy
from amosync.catchup.state import load, write_state
from amosync.core.mapping import RentProgField
from amosync.db.api_log import count_calls
from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.db.tables import sync_state
from amosync.l10n.catalog import N_
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW

LEASE_KEY = "backfill.lease"
# Short, and renewed in the background while the backfill works or waits (Lease.kept): a
# backfill killed with kill -9 holds the next one back at most this long.
LEASE_SECONDS = 20.0

Progress = Callable[[str, int, bool], None]  # entity, stored so far (all runs), finished


def backfill_key(entity: str) -> str:
    return f"backfill.{entity}"


@dataclass
class BackfillReport:
    loaded: dict[str, int] = field(default_factory=dict)  # objects stored by this run
    total: dict[str, int] = field(default_factory=dict)  # objects stored by all runs
    calls: int = 0
    stopped: str | None = None  # budget | backlog (only without waiting); None = complete


class Backfill:
    def __init__(
        self,
        db: Database,
        client: AmoClient,
        budget: ApiBudget,
        rentprog: RentProgField,
        *,
        wait: bool = True,
        on_progress: Progress | None = None,
        on_wait: Waiting | None = None,
        max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW,
    ) -> None:
        self._db = db
        self._client = client
        self._pacer = Pacer(budget, wait, on_wait)
        self._rentprog = rentprog
        self._on_progress = on_progress
        self._max_skew = max_clock_skew
        self._lease = Lease(db, LEASE_KEY, f"backfill-{uuid.uuid4().hex[:8]}", LEASE_SECONDS)

    async def run(
        self, entities: tuple[str, ...] = ENTITIES, *, restart: bool = False
    ) -> BackfillReport:
        """Load every entity kind in `entities`; raises CatchupBusy if a backfill is running."""
        refused = await self._lease.acquire()
        if refused is not None:
            busy = N_(
                "a backfill is already running in {holder}; if that process has stopped, its "
                "lease lapses {hint}: run it again then"
            )
            raise CatchupBusy(busy.format(holder=refused.holder, hint=refused.wait_hint))
        started = datetime.now(UTC)
        report = BackfillReport()
        try:
            async with self._lease.kept():
                if restart:
                    await self._forget(entities)
                for entity in entities:
                    report.stopped = await self._entity(entity, report)
                    if report.stopped:
                        break
        finally:
            report.calls = await count_calls(self._db, started, (BACKFILL,))
            await self._lease.release(finished=report.stopped is None)
        return report

    async def _entity(self, entity: str, report: BackfillReport) -> str | None:
        key = backfill_key(entity)
        state = await load(self._db, key) or {}
        total = int(state.get("loaded") or 0)
        report.loaded[entity], report.total[entity] = 0, total
        if state.get("done"):
            self._progress(entity, total, True)
            return None
        cursor = Cursor.from_json(state.get("cursor")) or Cursor(0)
        # Entities the next page repeats (same created_at second): stored, not counted again.
        repeated = {int(i) for i in state.get("edge") or []}
        self._progress(entity, total, False)
        while True:
            reason = await self._pacer.hold()
            if reason is not None:
                return reason
            page = await fetch_page(self._client, entity, "created_at", cursor, self._rentprog)
            after = page.next if page is not None else None
            async with self._db.write() as conn:
                if page is not None:
                    await store_page(conn, page, self._max_skew)
                    new = sum(1 for deal_id in page.answer.ids if deal_id not in repeated)
                    total += new
                    report.loaded[entity] += new
                    repeated = set(page.edge_ids) if after and after.page == 1 else set()
                value: dict[str, Any] = {
                    "cursor": after.as_json() if after else None,
                    "done": after is None,
                    "loaded": total,
                    "edge": sorted(repeated),
                }
                await write_state(conn, key, value)
            report.total[entity] = total
            self._progress(entity, total, after is None)
            if after is None:
                return None
            cursor = after

    async def _forget(self, entities: tuple[str, ...]) -> None:
        async with self._db.write() as conn:
            keys = [backfill_key(e) for e in entities]
            await conn.execute(delete(sync_state).where(sync_state.c.key.in_(keys)))

    def _progress(self, entity: str, total: int, finished: bool) -> None:
        if self._on_progress is not None:
            self._on_progress(entity, total, finished)
