"""One catch-up run: fetch what changed since the watermark, upsert it, flag deletions.

Webhooks are hints, not a guarantee (amoCRM drops them during outages and stops retrying
after ~95 minutes), so every `reconcile_interval` the worker asks amoCRM what changed:

    GET /api/v4/{leads,contacts,companies}?filter[updated_at][from]=<watermark − overlap>
        &order[updated_at]=asc&limit=250            (leads with=contacts)
    GET /api/v4/events?filter[type][]=lead_deleted…&filter[type][]=lead_status_changed
        &filter[created_at][from]=…&[to]=…

An idle account costs one call per query (amoCRM answers 204). Pages are upserted through
the worker's own path (newer `updated_at` wins, so re-reading the overlap is harmless),
and each page commits together with the cursor that says it is done: a crash, a shutdown
or a spent budget resumes after the last committed page on the next run.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from amosync.amocrm.client import AmoClient
from amosync.catchup.budget import CATCHUP, ApiBudget
from amosync.catchup.deletions import Window, apply_deletions, fetch_events
from amosync.catchup.pages import ENTITIES, Cursor, fetch_page, store_page
from amosync.catchup.stage_events import store_stage_events
from amosync.catchup.state import load, write_state
from amosync.core.mapping import RentProgField
from amosync.db.api_log import count_calls
from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.errors import AmosyncError, RequestRejected
from amosync.l10n.catalog import N_
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW

log = logging.getLogger(__name__)

LEASE_KEY = "catchup.lease"
LAST_RUN_KEY = "catchup.last_run"
DELETIONS_KEY = "catchup.deletions"
# Short, and renewed in the background while a run works (Lease.kept): a run killed with
# kill -9 holds the next one back at most this long.
LEASE_SECONDS = 20.0


def entity_key(entity: str) -> str:
    return f"catchup.{entity}"


class CatchupBusy(AmosyncError):
    """Another process is running catch-up right now."""


@dataclass
class ReconcileReport:
    started_at: datetime
    finished_at: datetime | None = None
    fetched: dict[str, int] = field(default_factory=dict)  # objects amoCRM returned
    written: dict[str, int] = field(default_factory=dict)  # rows inserted or updated
    deleted: int = 0  # entities flagged deleted from events
    stage_changes: int = 0  # new stage-history rows from lead_status_changed events
    calls: int = 0  # API requests this run made (retries included)
    stopped: str | None = None  # budget | backlog: resumes next run; None = complete

    @property
    def complete(self) -> bool:
        return self.stopped is None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


class Reconciler:
    def __init__(
        self,
        db: Database,
        client: AmoClient,
        budget: ApiBudget,
        rentprog: RentProgField,
        *,
        overlap: float,
        owner: str | None = None,
        entities: tuple[str, ...] = ENTITIES,
        max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW,
    ) -> None:
        self._db = db
        self._client = client
        self._budget = budget
        self._rentprog = rentprog
        self._overlap = int(overlap)
        self._entities = entities
        self._max_skew = max_clock_skew
        self._lease = Lease(
            db, LEASE_KEY, owner or f"catchup-{uuid.uuid4().hex[:8]}", LEASE_SECONDS
        )

    async def run(self, since: float | None = None, *, min_gap: float = 0.0) -> ReconcileReport:
        """One run. `since` (seconds) reaches back from now instead of from the watermark;
        `min_gap` skips the run when another process finished one that recently.

        Raises CatchupBusy when another process holds the run lease.
        """
        refused = await self._lease.acquire(min_gap=min_gap)
        if refused is not None:
            if refused.recently_finished:
                moments = N_("{holder} finished a catch-up run moments ago")
                raise CatchupBusy(moments.format(holder=refused.holder))
            busy = N_(
                "a catch-up run is in progress in {holder}; if that process has stopped, its "
                "lease lapses {hint}: try again then"
            )
            raise CatchupBusy(busy.format(holder=refused.holder, hint=refused.wait_hint))
        report = ReconcileReport(started_at=datetime.now(UTC))
        finished = False
        try:
            async with self._lease.kept():
                for entity in self._entities:
                    report.stopped = await self._entity(entity, since, report)
                    if report.stopped:
                        break
                else:
                    report.stopped = await self._deletions(since, report)
                finished = report.stopped is None
        finally:
            report.finished_at = datetime.now(UTC)
            report.calls = await count_calls(self._db, report.started_at, (CATCHUP,))
            await self._lease.release(finished=finished)
        async with self._db.write() as conn:
            await write_state(conn, LAST_RUN_KEY, report.as_json())
        log.info("catchup_run", extra={"event": "catchup_run", **report.as_json()})
        return report

    async def _entity(
        self, entity: str, since: float | None, report: ReconcileReport
    ) -> str | None:
        key = entity_key(entity)
        state = await load(self._db, key) or {}
        stored = state.get("watermark")
        resume = Cursor.from_json(state.get("resume"))
        now = int(time.time())
        if since is None:
            # First run ever: "now" — history before it is backfill's job.
            cursor = resume or Cursor((stored if stored is not None else now) - self._overlap)
            persist = True
        else:
            cursor = Cursor(now - int(since))
            # A manual run moves the watermark only when it covers everything after it.
            persist = stored is None or cursor.start <= (resume.start if resume else stored)
        watermark = stored if stored is not None else now
        report.fetched.setdefault(entity, 0)
        report.written.setdefault(entity, 0)
        while True:
            reason = await self._budget.stop_reason()
            if reason is not None:
                return reason
            page = await fetch_page(self._client, entity, "updated_at", cursor, self._rentprog)
            after = page.next if page is not None else None
            async with self._db.write() as conn:
                if page is not None:
                    applied = await store_page(conn, page, self._max_skew)
                    report.fetched[entity] += len(page.objects)
                    report.written[entity] += applied.written
                    # A lead dated in year 9999 must not carry the watermark there: every
                    # later run would start after all real changes.
                    newest = min(page.newest, int(time.time() + self._max_skew))
                    watermark = max(watermark, newest)
                if persist:
                    resume_json = after.as_json() if after else None
                    await write_state(conn, key, {"watermark": watermark, "resume": resume_json})
            if after is None:
                return None
            cursor = after

    async def _deletions(self, since: float | None, report: ReconcileReport) -> str | None:
        state = await load(self._db, DELETIONS_KEY) or {}
        stored = state.get("watermark")
        resume = Window.from_json(state.get("resume"))
        now = int(time.time())
        if since is None:
            start = (stored if stored is not None else now) - self._overlap
            window = resume or Window(start, now)
            persist = True
        else:
            window = Window(now - int(since), now)
            persist = stored is None or window.start <= (resume.start if resume else stored)
        comma = bool(state.get("comma_range"))
        while True:
            reason = await self._budget.stop_reason()
            if reason is not None:
                return reason
            try:
                page = await fetch_events(self._client, window, comma_range=comma)
            except RequestRejected as exc:
                if exc.status != 400 or comma:
                    raise
                comma = True  # remembered below: later runs use the form that worked
                page = await fetch_events(self._client, window, comma_range=comma)
            done = page is None or not page.more
            async with self._db.write() as conn:
                if page is not None:
                    report.deleted += await apply_deletions(conn, page.events)
                    report.stage_changes += await store_stage_events(
                        conn, page.events, self._max_skew
                    )
                if persist:
                    value: dict[str, Any] = {"watermark": window.end, "resume": None}
                    if not done:
                        following = Window(window.start, window.end, window.page + 1)
                        value = {"watermark": stored, "resume": following.as_json()}
                    await write_state(conn, DELETIONS_KEY, {**value, "comma_range": comma})
            if done:
                return None
            window = Window(window.start, window.end, window.page + 1)
