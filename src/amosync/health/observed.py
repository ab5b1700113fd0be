"""What the database says amoCRM last did, for `/health`: every real API call is logged in
`amocrm_api_requests` (db/api_log.py), the shared 429 pause and 403 block live in
`amosync_state` (amocrm/shared_limit.py), and the last verification run in `verify.last`.

Each query reads a few rows through an index (`at` of the call log, a primary key), so the
checks stay cheap however much history is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.amocrm.shared_limit import DEFAULT_KEY as RATE_LIMIT_KEY
from amosync.catchup.verify_state import LAST_KEY
from amosync.db.tables import api_requests, sync_state, webhook_events
from amosync.db.types import aware
from amosync.inbox.store import FAILED

VERIFY_KEY = LAST_KEY  # the verification run's result: catchup/verify_state.py


@dataclass(frozen=True)
class Call:
    at: datetime
    path: str
    status: int  # 0: no answer


@dataclass(frozen=True)
class ApiObservations:
    last: Call | None  # the newest call
    last_answered: Call | None  # the newest call amoCRM answered (any status)
    last_healthy: Call | None  # the newest call answered below 500
    trouble_since: datetime | None  # the first call after `last_healthy`


async def api_observations(conn: AsyncConnection) -> ApiObservations:
    last = await _newest(conn)
    if last is None:
        return ApiObservations(None, None, None, None)
    answered = last if last.status else await _newest(conn, api_requests.c.status != 0)
    healthy_filter = (api_requests.c.status > 0) & (api_requests.c.status < 500)
    healthy = last if 0 < last.status < 500 else await _newest(conn, healthy_filter)
    since = None
    if healthy is not last:
        first_bad = select(func.min(api_requests.c.at))
        if healthy is not None:
            first_bad = first_bad.where(api_requests.c.at > healthy.at)
        since = aware(await conn.scalar(first_bad))
    return ApiObservations(last, answered, healthy, since)


async def _newest(conn: AsyncConnection, *where: Any) -> Call | None:
    row = (
        await conn.execute(
            select(api_requests.c.at, api_requests.c.path, api_requests.c.status)
            .where(*where)
            .order_by(api_requests.c.at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    at = aware(row[0])
    assert at is not None
    return Call(at, str(row[1]), int(row[2]))


@dataclass(frozen=True)
class SharedPause:
    paused_until: datetime | None  # a 429's Retry-After, shared by every process
    blocked_until: datetime | None  # a 403 IP block


async def shared_pause(conn: AsyncConnection) -> SharedPause:
    value = await _state(conn, RATE_LIMIT_KEY)
    now = time.time()

    def future(key: str) -> datetime | None:
        raw = value.get(key) if value else None
        if isinstance(raw, int | float) and raw > now:
            return datetime.fromtimestamp(raw, UTC)
        return None

    return SharedPause(future("paused_until"), future("blocked_until"))


async def last_verification(conn: AsyncConnection) -> dict[str, Any] | None:
    return await _state(conn, VERIFY_KEY)


@dataclass(frozen=True)
class RecentFailures:
    count: int
    newest: datetime | None


async def recent_failures(conn: AsyncConnection, since: datetime) -> RecentFailures:
    """Events that became `failed` since `since` and are failed still (a retry puts them
    back to pending; resolving them is retrying or accepting them)."""
    # Through the (status, available_at, id) index's `failed` range: failed rows are few.
    count, newest = (
        await conn.execute(
            select(func.count(), func.max(webhook_events.c.processed_at)).where(
                webhook_events.c.status == FAILED, webhook_events.c.processed_at >= since
            )
        )
    ).one()
    return RecentFailures(int(count), aware(newest))


async def _state(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    value = await conn.scalar(select(sync_state.c.value).where(sync_state.c.key == key))
    return value if isinstance(value, dict) else None
