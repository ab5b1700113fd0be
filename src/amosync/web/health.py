"""GET /health: named checks, 200 when all pass, 503 otherwise (for load balancers and doctor)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from amosync.amocrm.token_info import (
    TokenExpiry,
    expiry_check,
    missing_token_hint,
    token_expiry,
)
from amosync.db.migrate import current_revision, head_revision
from amosync.db.reads import read_connection
from amosync.inbox.store import InboxStore, age_seconds
from amosync.settings import Settings
from amosync.worker.heartbeat import RUNNING, STOPPED, recent_workers
from amosync.worker.subscription import subscription_health, subscription_state

WORKER_STALE_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


async def run_checks(settings: Settings, engine: AsyncEngine) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    try:
        async with read_connection(engine) as conn:
            await conn.execute(text("SELECT 1"))
            revision = await conn.run_sync(current_revision)
    except SQLAlchemyError as exc:
        checks["database"] = Check(False, f"unreachable: {str(exc).splitlines()[0][:200]}")
        return checks
    checks["database"] = Check(True, "reachable")
    head = head_revision()
    checks["schema"] = (
        Check(True, f"at {head}")
        if revision == head
        else Check(False, f"at {revision or 'nothing'}, expected {head}: run `amosync migrate`")
    )
    workers = [w for w in await recent_workers(engine, WORKER_STALE_AFTER) if w.state != STOPPED]
    checks["worker"] = (
        Check(True, f"{len(workers)} alive")
        if workers
        else Check(
            False,
            "no worker reported in the last 30 s: "
            "start `amosync worker` or `serve` without --no-worker",
        )
    )
    expiry = await token_expiry(settings, engine)
    checks["amocrm_credentials"] = _credentials(settings, workers, expiry)
    token = expiry_check(settings, expiry)
    if token is not None:
        checks["amocrm_token_expiry"] = Check(*token)
    subscription = subscription_health(settings, await subscription_state(engine))
    if subscription is not None:
        checks["webhook_subscription"] = Check(*subscription)
    pending, oldest = await InboxStore(engine).backlog()
    age = age_seconds(oldest)
    limit = settings.health_max_backlog_age
    checks["backlog"] = (
        Check(True, f"{pending} pending" + (f", oldest {age:.0f} s" if age is not None else ""))
        if age is None or age <= limit
        else Check(False, f"{pending} pending, oldest {age:.0f} s (limit {limit:.0f} s)")
    )
    return checks


def _credentials(settings: Settings, workers: list[Any], expiry: TokenExpiry | None) -> Check:
    if settings.api_base_url is None:
        return Check(False, "set AMOSYNC_AMOCRM_SUBDOMAIN (or AMOSYNC_AMOCRM_BASE_URL)")
    if expiry is None:
        return Check(False, missing_token_hint(settings))
    troubled = [w for w in workers if w.state != RUNNING]
    if troubled:
        return Check(False, f"{troubled[0].state}: {troubled[0].detail}")
    return Check(True, "configured" + ("; accepted by amoCRM" if workers else ""))


async def health(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    checks = await run_checks(settings, request.app.state.engine)
    ok = all(c.ok for c in checks.values())
    return JSONResponse(
        {
            "status": "ok" if ok else "failing",
            "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
        },
        status_code=200 if ok else 503,
    )
