"""One rate limit for every process on one database: N workers together stay under 7 req/s.

amoCRM counts requests per account (and blocks per IP), not per process, so two workers each
limited to 7/s would send 14/s. This limiter keeps the sliding-window log of recent sends in
one `amosync_state` row. Taking a slot is one short transaction: lock the row
(`SELECT … FOR UPDATE` on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises writers),
drop sends older than the window, and either append "now" or learn how long to wait. A send
counts until `done()` reports its answer (see `ratelimit.effective_time`): amoCRM may see it
arrive that late. `done()` can carry more work into its transaction: `ReleaseAndRecord` writes
the call's log row there, so an API call costs two transactions, not three. Each transaction
is one synchronous function (`Database.write_sync`): on SQLite it runs whole on the
process's writer thread, and holds the write turn for its own ~1 ms instead of ~7 ms of
hand-offs through a busy event loop.

Times come from the database clock on PostgreSQL, so processes on several hosts agree on
what "one second" is; on SQLite (one host by definition) from the local clock.

A 429 pause (`retry_after`) and a 403 block are written into the same row: every process
waits out a 429, and every process stops calling amoCRM while the IP is blocked. Both are
bounded (`max_pause`, `max_block`) when noted *and* when read: a row written by an older
version with a pause of 31 years (`retry_after: 1e9`) counts as at most `max_pause` from
now, and is written back that way. `current_pause` reads the row for `status` and /health.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from amosync import metrics
from amosync.amocrm.calls import Call
from amosync.amocrm.ratelimit import Slot, effective_time, wait_for_slot
from amosync.core.backoff import MAX_RETRY_AFTER, clamp_pause
from amosync.db.api_log import DbCallRecorder
from amosync.db.database import Database
from amosync.db.tables import sync_state
from amosync.errors import IPBlocked, RateLimited

log = logging.getLogger(__name__)

DEFAULT_KEY = "amocrm_rate_limit"
# Waits longer than this (a 429 pause, never a full window) are logged.
_QUIET_WAIT = 5.0
# A 403 block longer than this is not believed either (the default cool-down is 600 s).
MAX_BLOCK = 3600.0
# Sends kept in the row: far more than any sane rate needs for one window.
_MAX_LOG = 256

# Built once (the key comes as a parameter): the two statements of every transaction.
_READ = select(sync_state.c.value).where(sync_state.c.key == bindparam("row_key")).with_for_update()
_WRITE = (
    sync_state.update()
    .where(sync_state.c.key == bindparam("row_key"))
    .values(value=bindparam("new_value"), updated_at=bindparam("now"))
)
_PG_NOW = text("SELECT CAST(extract(epoch FROM clock_timestamp()) AS double precision)")

InSameTransaction = Callable[[Connection], None]
"""More work for the limiter's transaction (the call log row): one commit instead of two."""


class SharedWindowLimiter:
    """`RateLimiter` whose window lives in the database row `amosync_state[key]`.

    `margin` widens the window like the in-process limiter's, for clock jitter between
    our clock and amoCRM's. A pause lasts at most `max_pause` seconds and a block at most
    `max_block`, however long the row says. With `max_wait` (doctor), `acquire` raises
    RateLimited instead of waiting longer than that for a pause or a free slot.
    """

    def __init__(
        self,
        db: Database,
        rate: float,
        *,
        key: str = DEFAULT_KEY,
        window: float = 1.0,
        margin: float = 0.05,
        max_pause: float = MAX_RETRY_AFTER,
        max_block: float = MAX_BLOCK,
        max_wait: float | None = None,
    ) -> None:
        self._db = db
        self._max_pause = max_pause
        self._max_block = max_block
        self._max_wait = max_wait
        self._key = key
        self._capacity = max(1, math.floor(rate * window))
        self._window = window + margin
        self._postgres = db.dialect == "postgresql"
        self._row_ready = False
        # One waiter per process at a time: fair order inside the process, and no herd of
        # transactions from one process competing for the same row lock.
        self._local = asyncio.Lock()
        # Pauses and blocks not yet written to the row: (seconds, monotonic time noted).
        self._pending_pause: tuple[float, float] | None = None
        self._pending_block: tuple[float, float] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def db(self) -> Database:
        return self._db

    async def acquire(self) -> Slot:
        async with self._local:
            while True:
                slot = uuid.uuid4().hex[:16]
                wait = await self._transact(take=slot)
                if wait <= 0:
                    return slot
                if self._max_wait is not None and wait > self._max_wait:
                    raise RateLimited(
                        f"calls to amoCRM are paused for {wait:.0f} s more (429)", delay=wait
                    )
                if wait > _QUIET_WAIT:  # a pause, not a full window: say why nothing moves
                    log.warning(
                        "rate_limit_paused",
                        extra={"event": "rate_limit_paused", "seconds": round(wait, 1)},
                    )
                metrics.rate_limit_wait(wait)
                await asyncio.sleep(wait)

    async def done(self, slot: Slot, *, also: InSameTransaction | None = None) -> None:
        """Stamp the slot's answer time; `also` runs in the same transaction."""
        await self._transact(finished=slot, also=also)

    def pause(self, seconds: float) -> None:
        """Nobody sends for `seconds` (a 429's `retry_after`)."""
        self._pending_pause = _longer(self._pending_pause, clamp_pause(seconds, self._max_pause))
        self._publish_soon()

    def block(self, seconds: float) -> None:
        """amoCRM blocked us (403): every process's `acquire` raises IPBlocked until then."""
        self._pending_block = _longer(self._pending_block, clamp_pause(seconds, self._max_block))
        self._publish_soon()

    async def aclose(self) -> None:
        """Wait for pauses still being written (so a 429 seen just before exit is shared)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the one transaction ------------------------------------------------------------

    async def _transact(
        self,
        *,
        take: Slot | None = None,
        finished: Slot | None = None,
        also: InSameTransaction | None = None,
    ) -> float:
        """Merge pending pauses into the row; with `take`, claim that slot or say how long to
        wait; with `finished`, stamp that slot's answer time; then run `also`."""
        if not self._row_ready:
            await self._create_row()
        pending_pause, pending_block = self._pending_pause, self._pending_block
        wait, blocked_for = await self._db.write_sync(
            partial(self._in_transaction, take, finished, also, pending_pause, pending_block),
        )
        # Written: forget what we merged, unless a newer pause arrived meanwhile.
        if self._pending_pause is pending_pause:
            self._pending_pause = None
        if self._pending_block is pending_block:
            self._pending_block = None
        if blocked_for > 0:
            raise IPBlocked(
                f"amoCRM blocked this IP (403); calls resume in {blocked_for:.0f} s",
                delay=blocked_for,
            )
        return wait

    def _in_transaction(
        self,
        take: Slot | None,
        finished: Slot | None,
        also: InSameTransaction | None,
        pending_pause: tuple[float, float] | None,
        pending_block: tuple[float, float] | None,
        conn: Connection,
    ) -> tuple[float, float]:
        """The transaction's work; (seconds to wait for a slot, seconds still blocked)."""
        value: dict[str, Any] = (
            conn.execute(_READ, {"row_key": self._key}).scalar_one_or_none() or {}
        )
        now = self._now(conn)
        slots = _recent(value.get("slots"), now, self._window)
        if finished is not None and finished in slots:
            slots[finished] = (slots[finished][0], now)
        paused_until = _merge(value.get("paused_until"), pending_pause, now, self._max_pause)
        blocked_until = _merge(value.get("blocked_until"), pending_block, now, self._max_block)
        wait = blocked_for = 0.0
        if take and blocked_until > now:
            blocked_for = blocked_until - now
        elif take:
            times = [effective_time(g, f, now) for g, f in slots.values()]
            wait = max(paused_until - now, wait_for_slot(times, self._capacity, self._window, now))
            if wait <= 0:
                slots[take] = (now, None)
        self._write(conn, slots, paused_until, blocked_until)
        if also is not None:
            also(conn)
        return wait, blocked_for

    def _write(
        self,
        conn: Connection,
        slots: dict[Slot, tuple[float, float | None]],
        paused_until: float,
        blocked_until: float,
    ) -> None:
        kept = [[slot, granted, answered] for slot, (granted, answered) in slots.items()]
        value = {
            "slots": kept[-_MAX_LOG:],
            "paused_until": paused_until,
            "blocked_until": blocked_until,
        }
        conn.execute(_WRITE, {"row_key": self._key, "new_value": value, "now": datetime.now(UTC)})

    def _now(self, conn: Connection) -> float:
        if self._postgres:
            # clock_timestamp(), not now(): now() is frozen at the start of the transaction,
            # which may be before we waited for the row lock.
            return float(conn.execute(_PG_NOW).scalar_one())
        return time.time()

    async def _create_row(self) -> None:
        empty = {"slots": [], "paused_until": 0.0, "blocked_until": 0.0}
        try:
            async with self._db.write() as conn:
                exists = await conn.execute(
                    select(sync_state.c.key).where(sync_state.c.key == self._key)
                )
                if exists.first() is None:
                    await conn.execute(
                        sync_state.insert().values(
                            key=self._key, value=empty, updated_at=datetime.now(UTC)
                        )
                    )
        except IntegrityError:
            pass  # another process created it between our SELECT and INSERT
        self._row_ready = True

    def _publish_soon(self) -> None:
        """Write a pause now, not only at this process's next `acquire`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next acquire() writes it
        task = loop.create_task(self._publish())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self) -> None:
        try:
            await self._transact()
        except SQLAlchemyError as exc:
            # Still honoured locally: the pending pause stays and the next acquire merges it.
            log.warning(
                "rate_limit_pause_not_shared",
                extra={"event": "rate_limit_pause_not_shared", "error": str(exc)[:200]},
            )


def _recent(stored: Any, now: float, window: float) -> dict[Slot, tuple[float, float | None]]:
    """The row's slots that still count: `{slot: [granted, answered or None]}`."""
    slots: dict[Slot, tuple[float, float | None]] = {}
    for entry in stored if isinstance(stored, list) else []:
        slot, granted, answered = entry
        if now - effective_time(granted, answered, now) < window:
            slots[str(slot)] = (float(granted), None if answered is None else float(answered))
    return slots


def _longer(pending: tuple[float, float] | None, seconds: float) -> tuple[float, float]:
    """The later-ending of a pending pause and a new one starting now."""
    new = (seconds, time.monotonic())
    if pending is None:
        return new
    return max(pending, new, key=lambda p: p[0] + p[1])


def _merge(stored: Any, pending: tuple[float, float] | None, now: float, cap: float) -> float:
    """The row's `…_until`, at most `cap` from now, extended by a pause noted locally
    (measured on our own clock)."""
    until = _bounded_until(stored, now, cap)
    if pending is not None:
        seconds, noted = pending
        until = max(until, now + seconds - (time.monotonic() - noted))
    return until


def _bounded_until(stored: Any, now: float, cap: float) -> float:
    """A stored `…_until` as a number no later than `now + cap` (0.0 when unreadable)."""
    if not isinstance(stored, int | float) or isinstance(stored, bool) or math.isnan(stored):
        return 0.0
    return min(float(stored), now + cap)


PauseKind = Literal["rate_limited", "ip_blocked"]


@dataclass(frozen=True, slots=True)
class SharedPause:
    """Every process holds its calls to amoCRM until `until`: a 429's pause or a 403 block."""

    kind: PauseKind
    until: datetime

    def seconds_left(self, now: datetime | None = None) -> float:
        return max(0.0, (self.until - (now or datetime.now(UTC))).total_seconds())

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "until": self.until.isoformat(timespec="seconds"),
            "seconds_left": round(self.seconds_left(), 1),
        }


async def current_pause(
    db: Database,
    *,
    key: str = DEFAULT_KEY,
    max_pause: float = MAX_RETRY_AFTER,
    max_block: float = MAX_BLOCK,
    now: float | None = None,
) -> SharedPause | None:
    """The shared pause in force now, if any (a block wins over a pause); read-only.

    Bounded like the limiter bounds it, so an absurd stored value shows as what it will be
    treated as. Times are this host's clock (on PostgreSQL the row holds the database's).
    """
    async with db.read() as conn:
        value = await conn.scalar(select(sync_state.c.value).where(sync_state.c.key == key))
    if not isinstance(value, dict):
        return None
    at = time.time() if now is None else now
    checks: tuple[tuple[PauseKind, str, float], ...] = (
        ("ip_blocked", "blocked_until", max_block),
        ("rate_limited", "paused_until", max_pause),
    )
    for kind, field, cap in checks:
        until = _bounded_until(value.get(field), at, cap)
        if until > at:
            when = datetime.fromtimestamp(until, UTC)
            return SharedPause(kind, when)
    return None


class ReleaseAndRecord:
    """`AfterAnswer` for a shared limiter and a database call log on the same database: the
    slot's release and the call's log row in one transaction, not two.

    A failure there is retried as two transactions, so that a log row that cannot be
    written (which only skews a counter) never keeps a slot from being released.
    """

    def __init__(self, limiter: SharedWindowLimiter, recorder: DbCallRecorder) -> None:
        if limiter.db is not recorder.db:
            raise ValueError("the limiter and the call log must share one engine")
        self._limiter = limiter
        self._recorder = recorder

    async def __call__(self, slot: Slot, call: Call | None) -> None:
        if call is None:
            await self._limiter.done(slot)
            return

        try:
            await self._limiter.done(
                slot,
                also=partial(
                    self._recorder.write,
                    method=call.method,
                    path=call.path,
                    status=call.status,
                    duration_ms=call.duration_ms,
                ),
            )
        except SQLAlchemyError:
            # Apart, in the old order: `record` logs and swallows its own failure, `done`
            # raises as it always has when the limiter's row cannot be written.
            await self._recorder.record(call.method, call.path, call.status, call.duration_ms)
            await self._limiter.done(slot)
            return
        await self._recorder.prune_if_due()
