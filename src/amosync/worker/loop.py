"""③ The worker: claim due events, collapse them, fetch in batches, apply, settle.

One cycle: claim up to `batch_size` due events; while fewer than 250 distinct entities are
waiting and the oldest claimed event is younger than `linger`, wait for more (a burst of
5,000 webhooks about 2,000 leads then costs a few dozen calls, not 5,000); fetch each
chunk of ≤ 250 ids in one call; apply the answer and mark the events done in one
transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from amosync import metrics
from amosync.amocrm.client import AmoClient
from amosync.core.answer import map_answer
from amosync.core.backoff import MAX_ATTEMPTS, retry_delay
from amosync.core.mapping import MappingError, RentProgField
from amosync.core.plan import (
    MAX_IDS_PER_CALL,
    ClaimedEvent,
    FetchChunk,
    distinct_entities,
    plan_fetch,
)
from amosync.db.database import Database
from amosync.errors import AmoCRMError, IPBlocked, ReauthRequired, RetryLater
from amosync.inbox.store import InboxStore, Retry
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.worker.claims import HeldClaims
from amosync.worker.heartbeat import (
    IP_BLOCKED,
    REAUTH_REQUIRED,
    RUNNING,
    STOPPED,
    WorkerState,
    beat,
)
from amosync.worker.isolate import by_reason, fetch_apart, store_apart
from amosync.worker.jobs import PeriodicJob, run_periodically
from amosync.worker.paused import WorkerPaused as _Paused
from amosync.worker.review import review_answer

log = logging.getLogger(__name__)

# Seconds the heartbeat and periodic jobs get to finish their current step on shutdown.
JOB_STOP_GRACE = 5.0


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 500
    linger: float = 0.3
    poll_interval: float = 0.2
    lease_seconds: float = 20.0  # renewed by every heartbeat while held (worker/claims.py)
    max_attempts: int = MAX_ATTEMPTS
    retry_base_delay: float = 5.0
    retry_max_delay: float = 3600.0
    reauth_pause: float = 60.0
    ip_block_pause: float = 600.0
    heartbeat_interval: float = 5.0
    max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW


class Worker:
    def __init__(
        self,
        db: Database,
        inbox: InboxStore,
        client: AmoClient,
        rentprog: RentProgField,
        config: WorkerConfig,
        jobs: Sequence[PeriodicJob] = (),
    ) -> None:
        self._db = db
        self._jobs = tuple(jobs)
        self._inbox = inbox
        self._client = client
        self._rentprog = rentprog
        self._config = config
        self.state = WorkerState()
        # Leases younger than one beat are not rewritten (worker/claims.py).
        self._held = HeldClaims(
            inbox, self.state.id, config.lease_seconds, held_for=config.heartbeat_interval
        )
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._unsettled: dict[int, ClaimedEvent] = {}
        # When the last claim of the batch just processed started (monotonic seconds), if
        # that claim emptied the queue; see `_pace`.
        self._last_claim_at: float | None = None

    def notify(self) -> None:
        """New events were committed (called by the in-process writer): stop sleeping."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        """Run until `stop()`; events claimed but not finished are released on the way out."""
        log.info("worker_started", extra={"event": "worker_started", "worker": self.state.id})
        beats = asyncio.create_task(self._heartbeats(), name="worker-heartbeat")
        jobs = [
            asyncio.create_task(run_periodically(job, self._stopping), name=f"job-{job.name}")
            for job in self._jobs
        ]
        try:
            while not self._stopping.is_set():
                try:
                    handled = await self.run_once()
                except _Paused as paused:
                    await self._pause(paused)
                    continue
                except SQLAlchemyError as exc:
                    log.error(
                        "worker_db_error",
                        extra={"event": "worker_db_error", "error": str(exc)[:300]},
                    )
                    await self._sleep(min(5.0, self._config.poll_interval * 10))
                    continue
                if not handled:
                    await self._sleep(self._config.poll_interval)
        finally:
            self._stopping.set()  # also when run() itself is cancelled
            await self._finish(beats, jobs)
            self.state.state = STOPPED
            with contextlib.suppress(SQLAlchemyError, asyncio.CancelledError):
                await beat(self._db, self.state)
            log.info("worker_stopped", extra={"event": "worker_stopped", "worker": self.state.id})

    @contextlib.asynccontextmanager
    async def beating(self) -> AsyncIterator[None]:
        """Heartbeats, and with them the renewal of claimed events, while the body calls
        `run_once()` itself (`worker --once`): its batch too is never taken from it, however
        long amoCRM keeps it waiting. The worker's row ends `stopped`."""
        beats = asyncio.create_task(self._heartbeats(), name="worker-heartbeat")
        try:
            yield
        finally:
            self._stopping.set()
            await self._finish(beats, [])
            self.state.state = STOPPED
            with contextlib.suppress(SQLAlchemyError, asyncio.CancelledError):
                await beat(self._db, self.state)

    async def run_once(self) -> int:
        """One cycle; returns how many events it settled or rescheduled."""
        events = await self._claim_batch()
        if not events:
            return 0
        try:
            await self._process(events)
        except BaseException:
            # Whatever stopped us (pause, shutdown, crash of this cycle), events we did not
            # finish go back at once instead of waiting out their lease.
            await asyncio.shield(self._release_unsettled(events))
            raise
        return len(events)

    async def _claim_batch(self) -> list[ClaimedEvent]:
        cfg = self._config
        self._held.clear()  # the last batch is over: settled, rescheduled or released
        await self._pace()
        claim_started = time.monotonic()
        events = await self._inbox.claim(self.state.id, cfg.batch_size, cfg.lease_seconds)
        self._held.add(e.id for e in events)
        if not events:
            return events
        drained = len(events) < cfg.batch_size  # the last claim took every due event
        oldest = min(e.received_at for e in events)
        while len(events) < cfg.batch_size and not self._stopping.is_set():
            if max(distinct_entities(events).values(), default=0) >= MAX_IDS_PER_CALL:
                drained = False  # more may be coming fast: no pause before the next batch
                break
            left = cfg.linger - (datetime.now(UTC) - oldest).total_seconds()
            if left <= 0:
                break
            # Not woken by new commits: at 200 webhooks/s that would mean a claim
            # transaction per webhook, each taking the lock the webhook writer needs.
            await self._linger(min(left, cfg.poll_interval))
            claim_started = time.monotonic()
            wanted = cfg.batch_size - len(events)
            more = await self._inbox.claim(self.state.id, wanted, cfg.lease_seconds)
            self._held.add(e.id for e in more)
            drained = len(more) < wanted
            events += more
        self._last_claim_at = claim_started if drained else None
        return events

    async def _pace(self) -> None:
        """Right after a batch whose last claim emptied the queue, wait before claiming.

        Whatever arrived since that claim is younger than `linger`, so claiming it at once
        would only start a linger wait with another claim at its end: under a steady stream
        that is three claim transactions per batch instead of two. The wait is capped by
        `poll_interval` like a linger step, so a batch filling up is noticed as early as
        before; a backlog (a full claim) or a batch cut at 250 entities is not paced.
        """
        if self._last_claim_at is None:
            return
        left = self._last_claim_at + self._config.linger - time.monotonic()
        self._last_claim_at = None
        if left > 0:
            await self._linger(min(left, self._config.poll_interval))

    async def _process(self, events: list[ClaimedEvent]) -> None:
        started = time.monotonic()
        self._unsettled = {e.id: e for e in events}
        plan = plan_fetch(events)
        if plan.unfetchable:
            await self._inbox.fail(plan.unfetchable, "event names no entity id to fetch")
            self._forget(plan.unfetchable)
            self.state.failed += len(plan.unfetchable)
            metrics.EVENTS_FAILED.inc(len(plan.unfetchable))
        calls = 0
        for chunk in plan.chunks:
            if self._stopping.is_set():
                break
            calls += 1
            await self._process_chunk(chunk)
        self.state.state, self.state.detail = RUNNING, None
        log.info(
            "worker_batch",
            extra={
                "event": "worker_batch",
                "worker": self.state.id,
                "first_event_id": min(e.id for e in events),
                "last_event_id": max(e.id for e in events),
                "events": len(events),
                "entities": sum(len(c.ids) for c in plan.chunks),
                "api_calls": calls,
                "ms": int((time.monotonic() - started) * 1000),
            },
        )

    async def _process_chunk(self, chunk: FetchChunk) -> None:
        try:
            # An entity that makes the answer too large, or that the database refuses, is
            # split off; the rest is stored (worker/isolate.py).
            fetched_at = datetime.now(UTC)
            fetched = await fetch_apart(self._client, chunk, self._unsettled)
            answer = map_answer(
                chunk.entity,
                fetched.chunk.ids,
                fetched.objects,
                self._rentprog,
                fetched_at=fetched_at,
            )
            # Missing ids asked for alone, future-dated ones held back (worker/review.py).
            reviewed = await review_answer(
                self._client, self._db, answer, self._rentprog, self._config.max_clock_skew
            )
            held = reviewed.held_events(fetched.chunk, self._unsettled)
            answer, kept = reviewed.answer, reviewed.remaining(fetched.chunk, self._unsettled)
            for reason, event_ids in held.items():
                await self._reschedule(event_ids, reason, None)
            upsert_started = time.perf_counter()
            stored = await store_apart(
                self._inbox, answer, kept, self._unsettled, self._config.max_clock_skew
            )
            metrics.upsert_done(chunk.entity, upsert_started)
        except ReauthRequired as exc:
            raise _Paused(REAUTH_REQUIRED, str(exc), self._config.reauth_pause) from None
        except IPBlocked as exc:
            pause = exc.delay if exc.delay is not None else self._config.ip_block_pause
            raise _Paused(IP_BLOCKED, str(exc), pause) from None
        except (AmoCRMError, MappingError) as exc:
            delay = exc.delay if isinstance(exc, RetryLater) else None
            await self._reschedule(chunk.event_ids, str(exc), delay)
            return
        await self._settle_isolated(chunk, fetched.too_large | stored.refused, stored.retry)
        applied = stored.applied
        self._forget(stored.done)
        self.state.processed += len(stored.done)
        metrics.EVENTS_PROCESSED.inc(len(stored.done))
        log.debug(
            "entities_applied",
            extra={
                "event": "entities_applied",
                "entity": chunk.entity,
                "ids": len(chunk.ids),
                "written": applied.written,
                "stale": applied.stale,
                "deleted": applied.deleted,
                "contacts_queued": applied.contacts_queued,
            },
        )

    async def _reschedule(self, event_ids: Sequence[int], error: str, delay: float | None) -> None:
        cfg = self._config
        retries = []
        for event_id in event_ids:
            attempts = self._unsettled[event_id].attempts
            backoff = retry_delay(attempts, base=cfg.retry_base_delay, cap=cfg.retry_max_delay)
            retries.append(Retry(event_id, attempts, max(backoff, delay or 0.0), error))
        failed = await self._inbox.retry_later(retries, cfg.max_attempts)
        log.warning(
            "events_rescheduled",
            extra={
                "event": "events_rescheduled",
                "events": len(retries),
                "failed": failed,
                "error": error[:300],
            },
        )
        # Rescheduled events are neither processed nor failed yet; only the ones out of
        # attempts are counted.
        self._forget(event_ids)
        self.state.failed += failed
        metrics.EVENTS_FAILED.inc(failed)

    async def _settle_isolated(
        self, chunk: FetchChunk, failed: dict[int, str], retry: dict[int, str]
    ) -> None:
        """Entities split off their chunk: fail the events of those refused for their data,
        reschedule (spending an attempt) those that failed for no known reason."""
        to_fail = by_reason(chunk, failed, self._unsettled)
        to_retry = by_reason(chunk, retry, self._unsettled)
        for reason, event_ids in to_fail.items():
            await self._inbox.fail(event_ids, reason)
            self._forget(event_ids)
            self.state.failed += len(event_ids)
            metrics.EVENTS_FAILED.inc(len(event_ids))
        for reason, event_ids in to_retry.items():
            await self._reschedule(event_ids, reason, None)

    def _forget(self, event_ids: Sequence[int]) -> None:
        """These events are settled in the database: nothing to release on the way out."""
        for event_id in event_ids:
            self._unsettled.pop(event_id, None)
        self._held.discard(event_ids)

    async def _release_unsettled(self, events: list[ClaimedEvent]) -> None:
        left = [e for e in events if e.id in self._unsettled]
        if left:
            with contextlib.suppress(SQLAlchemyError):
                await self._inbox.release(e.id for e in left)
        self._unsettled = {}
        self._held.clear()

    async def _pause(self, paused: _Paused) -> None:
        self.state.state, self.state.detail = paused.state, paused.detail
        log.error(
            "worker_paused",
            extra={
                "event": "worker_paused",
                "state": paused.state,
                "reason": paused.detail,
                "seconds": paused.pause,
            },
        )
        with contextlib.suppress(SQLAlchemyError):
            await beat(self._db, self.state)
        # New webhooks must not end the pause: only time or shutdown does.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=paused.pause)

    async def _linger(self, seconds: float) -> None:
        """Sleep, waking early only for shutdown."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once for new events or shutdown."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

    async def _finish(self, beats: asyncio.Task[None], jobs: list[asyncio.Task[None]]) -> None:
        """Let the heartbeat and the jobs end by themselves before cancelling any.

        Cancelling a task in the middle of a query makes SQLAlchemy throw its connection
        away; with aiosqlite that close can outlive the event loop and hang its shutdown.
        Both loops watch `_stopping`, so they usually end within one statement.
        """
        tasks = [beats, *jobs]
        _, late = await asyncio.wait(tasks, timeout=JOB_STOP_GRACE)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeats(self) -> None:
        while not self._stopping.is_set():
            # A failed beat only risks a lapsed lease: a double fetch (worker/claims.py).
            with contextlib.suppress(SQLAlchemyError):
                await beat(self._db, self.state, also=self._held.renew_in)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=self._config.heartbeat_interval
                )
