"""The worker's reference refresh: pipelines, stages, users, field definitions, loss reasons.

amoCRM announces none of them by webhook, so the worker polls: every 5 minutes (`TICK`) it
looks (in the database only) whether a refresh is due, and refreshes when

- none was stored yet, or the last is older than `reference_interval` (default 1 h), or
- a deal or contact stored since the last refresh names an id we do not know, and the last
  refresh is at least `TICK` old: at most one such refresh per 5 minutes.

A refresh costs about 6 requests (pipelines, users, 3 field lists, loss reasons; more only
for lists longer than one page), so an idle account spends 6 an hour on it by default.
Like catch-up it holds a lease (one run across processes), logs its calls with purpose
`reference` (counted in `api_budget_per_hour`) and steps aside when that budget is spent or
the webhook backlog is large. The outcome is kept under `reference.last` for `doctor`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from amosync.amocrm.client import AmoClient
from amosync.catchup.budget import ApiBudget
from amosync.catchup.state import load, write_state
from amosync.core.field_columns import FieldColumn
from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.db.wide_view import FieldColumnsError, sync_wide_view
from amosync.errors import AmoCRMError
from amosync.reference.fetch import fetch_reference
from amosync.reference.store import store_reference
from amosync.reference.unknown import unknown_reference
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob

log = logging.getLogger(__name__)

STATE_KEY = "reference.last"
LEASE_KEY = "reference.lease"
LEASE_SECONDS = 300.0
TICK = 300.0  # how often the job looks; also the least time between two refreshes
FIRST_RUN_DELAY = 30.0  # after a start, the webhook backlog first
RETRY_AFTER_FAILURE = timedelta(minutes=15)


def _when(value: object) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


async def read_last(db: Database) -> dict[str, Any] | None:
    """`{"at", "users": "ok"|"forbidden", "loss_reasons": "ok"|"absent", "counts", …}` of
    the last refresh (`failed_at`/`error` after a failed one), or None before the first."""
    return await load(db, STATE_KEY)


class ReferenceRefresher:
    def __init__(
        self,
        db: Database,
        client: AmoClient,
        budget: ApiBudget,
        *,
        interval: float,
        field_columns: Sequence[FieldColumn] = (),
        owner: str | None = None,
    ) -> None:
        self._db = db
        self._field_columns = tuple(field_columns)
        self._client = client
        self._budget = budget
        self._interval = timedelta(seconds=max(interval, TICK))
        self._lease = Lease(
            db, LEASE_KEY, owner or f"reference-{uuid.uuid4().hex[:8]}", LEASE_SECONDS
        )

    async def due(self, now: datetime) -> str | None:
        """Why a refresh is due now ("first", "stale", "unknown pipeline 7…"), or None."""
        last = await read_last(self._db) or {}
        at = _when(last.get("at"))
        failed_at = _when(last.get("failed_at"))
        failed_last = failed_at is not None and (at is None or failed_at > at)
        if failed_last and failed_at is not None and now - failed_at < RETRY_AFTER_FAILURE:
            return None
        if at is None:
            return "first"
        if now - at >= self._interval:
            return "stale"
        if now - at < timedelta(seconds=TICK):
            return None
        async with self._db.read() as conn:
            unknown = await unknown_reference(
                conn, at, check_users=last.get("users") != "forbidden"
            )
        return None if unknown is None else f"unknown {unknown}"

    async def run(
        self, *, now: datetime | None = None, force: bool = False
    ) -> dict[str, Any] | None:
        """Refresh when due (or `force`); the stored outcome, or None when skipped."""
        now = now or datetime.now(UTC)
        if await self._lease.acquire() is not None:
            return None
        try:
            reason = "forced" if force else await self.due(now)
            if reason is None or await self._budget.stop_reason() is not None:
                return None
            try:
                fetched = await fetch_reference(self._client)
            except AmoCRMError as exc:
                await self._note_failure(now, exc)
                raise
            result: dict[str, Any] = {
                "at": now.isoformat(),
                "reason": reason,
                "users": "forbidden" if fetched.users is None else "ok",
                "loss_reasons": "absent" if fetched.loss_reasons is None else "ok",
            }
            async with self._db.write() as conn:
                result["counts"] = await store_reference(conn, fetched, now)
                await write_state(conn, STATE_KEY, result)
            log.info("reference_refreshed", extra={"event": "reference_refreshed", **result})
            await self._retype_wide_view()
            return result
        finally:
            await self._lease.release(finished=True)

    async def _retype_wide_view(self) -> None:
        """Give the alias view its column types from the definitions just stored (it was made
        at start, all text, when none were stored yet; a field's type may also change). Only
        with aliases set: a worker started without the setting leaves `serve`'s view alone.
        A bad id is logged, not raised: the refresh itself succeeded, and the next start
        refuses the setting with the same line."""
        if not self._field_columns:
            return
        try:
            async with self._db.write() as conn:
                plan = await conn.run_sync(sync_wide_view, self._field_columns)
        except FieldColumnsError as exc:
            log.error(
                "deal_field_columns", extra={"event": "deal_field_columns", "error": str(exc)}
            )
            return
        if plan.changed:
            log.info("deal_field_columns_view", extra={"event": "deal_field_columns_view"})

    async def _note_failure(self, now: datetime, exc: Exception) -> None:
        last = await read_last(self._db) or {}
        last.update(failed_at=now.isoformat(), error=str(exc)[:300])
        async with self._db.write() as conn:
            await write_state(conn, STATE_KEY, last)


def reference_refresher(settings: Settings, db: Database, client: AmoClient) -> ReferenceRefresher:
    return ReferenceRefresher(
        db,
        client,
        ApiBudget(db, settings.api_budget_per_hour, settings.worker_batch_size),
        interval=settings.reference_interval,
        field_columns=settings.deal_field_column_list,
    )


def reference_job(
    settings: Settings, db: Database, make_client: Callable[[], AmoClient]
) -> PeriodicJob | None:
    """The job, or None when `reference_interval` is 0 or no account is configured.

    `make_client` builds a client whose calls are logged with purpose "reference"."""
    if settings.reference_interval <= 0 or settings.api_base_url is None:
        return None

    async def run() -> None:
        client = make_client()
        try:
            await reference_refresher(settings, db, client).run()
        except AmoCRMError as exc:
            # The worker reports token, IP and outage problems itself; the tables keep
            # what they had and the next try comes after RETRY_AFTER_FAILURE.
            log.warning("reference_failed", extra={"event": "reference_failed", "error": str(exc)})
        finally:
            await client.aclose()

    return PeriodicJob("reference", TICK, run, first_delay=FIRST_RUN_DELAY)
