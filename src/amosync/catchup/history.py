"""`amosync backfill --history`: older `lead_status_changed` events, into the stage history.

Catch-up reads stage changes from its first run on; this loads the ones before, reaching
back `--since` (90 days by default). It walks back from the moment of its first run in
closed `created_at` windows of `WINDOW_SECONDS` (the events API documents no `order`, so
closed windows are what keeps pages stable), newest first, so a stopped run has already
loaded the most recent history. Each page commits with the state that says it is done
(`backfill.history` in `amosync_state`): a run stopped by Ctrl-C, a crash or the budget
continues where it stopped, and a later run with a longer `--since` only walks further
back. It spends from the same hourly budget as catch-up and steps aside for a webhook
backlog; an empty window costs one call (amoCRM answers 204).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from amosync.amocrm.client import AmoClient
from amosync.catchup.budget import BACKFILL, ApiBudget
from amosync.catchup.deletions import Window, fetch_events
from amosync.catchup.pacing import Pacer, Waiting
from amosync.catchup.reconcile import CatchupBusy
from amosync.catchup.stage_events import store_stage_events
from amosync.catchup.state import load, write_state
from amosync.core.stage_events import STAGE_CHANGED
from amosync.db.api_log import count_calls
from amosync.db.lease import Lease
from amosync.errors import RequestRejected
from amosync.l10n.catalog import N_
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW

if TYPE_CHECKING:
    from amosync.db.database import Database

STATE_KEY = "backfill.history"
LEASE_KEY = "backfill.history.lease"
LEASE_SECONDS = 20.0  # as backfill.py: renewed while running, lapses soon after a kill -9
DEFAULT_SINCE = 90 * 86400.0
# A week per window: an idle 90 days costs 13 calls, and a busy week is a few pages.
WINDOW_SECONDS = 7 * 86400
DAY = 86400

# stored (all runs), days covered, days wanted, finished
Progress = Callable[[int, int, int, bool], None]


@dataclass
class HistoryState:
    """What `backfill.history` holds: everything in [reached, to] is loaded."""

    to: int  # when the first run started; catch-up covers what came after
    reached: int
    window: Window | None = None  # the window being read, at its next page
    loaded: int = 0
    comma_range: bool = False

    def as_json(self) -> dict[str, Any]:
        window = self.window.as_json() if self.window else None
        return {
            "to": self.to,
            "reached": self.reached,
            "window": window,
            "loaded": self.loaded,
            "comma_range": self.comma_range,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> HistoryState | None:
        try:
            if value is None:
                return None
            return cls(
                int(value["to"]),
                int(value["reached"]),
                Window.from_json(value.get("window")),
                int(value.get("loaded") or 0),
                bool(value.get("comma_range")),
            )
        except (KeyError, TypeError, ValueError):
            return None  # not ours to trust: start over rather than fail every run


@dataclass
class HistoryReport:
    loaded: int = 0  # new history rows this run
    total: int = 0  # new history rows, all runs
    days: int = 0  # days back from the first run that are loaded
    calls: int = 0
    stopped: str | None = None  # budget | backlog (only without waiting); None = complete


class HistoryBackfill:
    def __init__(
        self,
        db: Database,
        client: AmoClient,
        budget: ApiBudget,
        *,
        wait: bool = True,
        on_progress: Progress | None = None,
        on_wait: Waiting | None = None,
        max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW,
    ) -> None:
        self._db = db
        self._client = client
        self._pacer = Pacer(budget, wait, on_wait)
        self._on_progress = on_progress
        self._max_skew = max_clock_skew
        self._lease = Lease(db, LEASE_KEY, f"history-{uuid.uuid4().hex[:8]}", LEASE_SECONDS)

    async def run(self, since: float = DEFAULT_SINCE, *, restart: bool = False) -> HistoryReport:
        """Load stage changes back to `since` seconds ago; raises CatchupBusy when another
        history backfill runs."""
        refused = await self._lease.acquire()
        if refused is not None:
            busy = N_(
                "a history backfill is already running in {holder}; if that process has "
                "stopped, its lease lapses {hint}: run it again then"
            )
            raise CatchupBusy(busy.format(holder=refused.holder, hint=refused.wait_hint))
        started = datetime.now(UTC)
        report = HistoryReport()
        try:
            async with self._lease.kept():
                report.stopped = await self._walk(since, restart, report)
        finally:
            report.calls = await count_calls(self._db, started, (BACKFILL,))
            await self._lease.release(finished=report.stopped is None)
        return report

    async def _walk(self, since: float, restart: bool, report: HistoryReport) -> str | None:
        now = int(time.time())
        state = None if restart else HistoryState.from_json(await load(self._db, STATE_KEY))
        if state is None:
            state = HistoryState(to=now, reached=now + 1)
        # The oldest second wanted: the last `since` seconds are (now − since, now]. A window
        # in progress is finished whatever `since` says.
        oldest = min(now - int(since) + 1, state.reached)
        report.total = state.loaded
        wanted_days = max(1, math.ceil((state.to - oldest) / DAY))
        while True:
            report.days = min(wanted_days, (state.to - state.reached + 1) // DAY)
            window = state.window or self._next_window(state, oldest)
            if window is None:
                report.days = wanted_days
                self._progress(report, wanted_days, True)
                return None
            self._progress(report, wanted_days, False)
            reason = await self._pacer.hold()
            if reason is not None:
                return reason
            page, state.comma_range = await self._fetch(window, state.comma_range)
            async with self._db.write() as conn:
                new = 0
                if page is not None:
                    new = await store_stage_events(conn, page.events, self._max_skew)
                if page is not None and page.more:
                    state.window = Window(window.start, window.end, window.page + 1)
                else:
                    state.window, state.reached = None, window.start
                state.loaded += new
                await write_state(conn, STATE_KEY, state.as_json())
            report.loaded += new
            report.total = state.loaded

    @staticmethod
    def _next_window(state: HistoryState, oldest: int) -> Window | None:
        if state.reached <= oldest:
            return None
        end = state.reached - 1
        return Window(max(oldest, end - WINDOW_SECONDS + 1), end)

    async def _fetch(self, window: Window, comma: bool) -> tuple[Any, bool]:
        types = (STAGE_CHANGED,)
        try:
            return await fetch_events(self._client, window, comma_range=comma, types=types), comma
        except RequestRejected as exc:
            # The same fallback as catch-up (reconcile.py): the older `from,to` form.
            if exc.status != 400 or comma:
                raise
            return await fetch_events(self._client, window, comma_range=True, types=types), True

    def _progress(self, report: HistoryReport, wanted_days: int, finished: bool) -> None:
        if self._on_progress is not None:
            self._on_progress(report.total, report.days, wanted_days, finished)
