"""Every check of `/health`, computed from the database (and this process's storage watch),
so `/health`, the status page and its banner tell the same story from the same source.

Each check says ok, warn or fail, a sentence with what to do, and since when. The contract
(each check, what fails it, what to do) is documented in docs/OPERATIONS.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.token_info import expiry_check, missing_token_hint, token_expiry
from amosync.core.humanize import age, when
from amosync.db.database import Database
from amosync.db.migrate import current_revision, head_revision
from amosync.health.model import FAIL, OK, WARN, Check
from amosync.health.observed import (
    ApiObservations,
    SharedPause,
    api_observations,
    last_verification,
    recent_failures,
    shared_pause,
)
from amosync.health.probe import HealthProbe
from amosync.inbox.store import InboxStore
from amosync.settings import Settings
from amosync.worker.heartbeat import IP_BLOCKED, REAUTH_REQUIRED, STOPPED, WorkerRow
from amosync.worker.heartbeat import recent_workers as _recent_workers
from amosync.worker.subscription import subscription_health, subscription_state

WORKER_STALE_AFTER = timedelta(seconds=30)
# A 429 pause longer than this fails /health; a shorter one is the limiter doing its job.
LONG_PAUSE = timedelta(seconds=60)
PAUSED_STATES = (REAUTH_REQUIRED, IP_BLOCKED)
REAUTH_FIX = (
    "re-authorise with `amosync auth login` (OAuth) or a new "
    "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN; events wait, pending"
)


async def run_checks(
    settings: Settings, db: Database, probe: HealthProbe | None = None
) -> dict[str, Check]:
    """Every check, in a stable order; only `database` when the database does not answer."""
    probe = probe or HealthProbe()
    now = datetime.now(UTC)
    checks: dict[str, Check] = {}
    live = await probe.live(db)
    if not live.ok:
        checks["database"] = live
        return checks
    try:
        async with db.read() as conn:
            revision = await conn.run_sync(current_revision)
    except SQLAlchemyError as exc:
        checks["database"] = Check(FAIL, f"unreachable: {_first_line(exc)}", now)
        return checks
    head = head_revision()
    checks["database"] = await probe.database(db) if revision is not None else live
    checks["schema"] = (
        Check(OK, f"at {head}")
        if revision == head
        else Check(FAIL, f"at {revision or 'nothing'}, expected {head}: run `amosync migrate`")
    )
    if revision != head:
        return checks
    workers = [w for w in await _recent_workers(db, WORKER_STALE_AFTER) if w.state != STOPPED]
    async with db.read() as conn:
        calls = await api_observations(conn)
        pause = await shared_pause(conn)
        failures = await recent_failures(
            conn, now - timedelta(seconds=settings.health_failed_window)
        )
        last_webhook = await probe.last_webhook(conn)
        verification = await last_verification(conn)
    checks["worker"] = _worker(workers)
    expiry = await token_expiry(settings, db)
    checks["amocrm_credentials"] = _credentials(settings, workers, calls, expiry is not None)
    checks["amocrm_api"] = _reachable(settings, calls)
    checks["amocrm_pause"] = _pause(pause, workers, now)
    token = expiry_check(settings, expiry)
    if token is not None:
        checks["amocrm_token_expiry"] = Check.from_pair(token)
    subscription = subscription_health(settings, await subscription_state(db))
    if subscription is not None:
        checks["webhook_subscription"] = Check.from_pair(subscription)
    checks["backlog"] = await _backlog(settings, db)
    window = age(settings.health_failed_window)
    checks["failed_events"] = (
        Check(OK, f"none failed in the last {window}")
        if failures.count == 0
        else Check(
            FAIL,
            f"{failures.count} failed in the last {window}, still failed: see "
            "`amosync events list --status failed`, fix the cause, then "
            "`amosync events retry --failed`",
            failures.newest,
        )
    )
    checks["last_webhook"] = _last_webhook(settings, last_webhook, now)
    checks["verification"] = _verification(verification)
    return checks


def _worker(workers: list[WorkerRow]) -> Check:
    if not workers:
        return Check(
            FAIL,
            "no worker reported in the last 30 s: "
            "start `amosync worker` or `serve` without --no-worker",
        )
    working = [w for w in workers if w.state not in PAUSED_STATES]
    if working:
        return Check(OK, f"{len(workers)} alive", min(w.last_seen for w in working))
    first = workers[0]
    return Check(
        FAIL,
        f"{len(workers)} alive but paused, {first.state}: {first.detail or 'no detail'}",
    )


def _credentials(
    settings: Settings, workers: list[WorkerRow], calls: ApiObservations, has_token: bool
) -> Check:
    if settings.api_base_url is None:
        return Check(FAIL, "set AMOSYNC_AMOCRM_SUBDOMAIN (or AMOSYNC_AMOCRM_BASE_URL)")
    if not has_token:
        return Check(FAIL, missing_token_hint(settings))
    reauth = [w for w in workers if w.state == REAUTH_REQUIRED]
    if reauth:
        return Check(FAIL, f"refused ({reauth[0].detail or 'reauth_required'}): {REAUTH_FIX}")
    answered = calls.last_answered
    if answered is None:
        return Check(WARN, "configured; no amoCRM API call answered yet")
    seen = f"the last answered call, {age(datetime.now(UTC) - answered.at)} ago"
    if answered.status == 401:
        return Check(FAIL, f"refused by amoCRM (401 on {seen}): {REAUTH_FIX}", answered.at)
    return Check(OK, f"accepted by amoCRM ({answered.status} on {seen})", answered.at)


def _reachable(settings: Settings, calls: ApiObservations) -> Check:
    last = calls.last
    if settings.api_base_url is None:
        return Check(WARN, "no amoCRM account configured")
    if last is None:
        return Check(WARN, "no amoCRM API call made yet")
    ago = age(datetime.now(UTC) - last.at)
    if last.status == 0 or last.status >= 500:
        answer = "no answer" if last.status == 0 else f"{last.status}"
        healthy = calls.last_healthy
        good = f"last good answer {when(healthy.at)}" if healthy else "no good answer kept"
        return Check(
            FAIL,
            f"unreachable: the last call ({ago} ago) got {answer}; {good}. Check the network, "
            "DNS and AMOSYNC_AMOCRM_SUBDOMAIN; events wait and are retried",
            calls.trouble_since or last.at,
        )
    return Check(OK, f"answered {last.status} {ago} ago", last.at)


def _pause(pause: SharedPause, workers: list[WorkerRow], now: datetime) -> Check:
    if pause.blocked_until is not None:
        return Check(
            FAIL,
            f"amoCRM blocked this IP (403): no calls until {when(pause.blocked_until)}. "
            "Too many requests or a wrong address: check AMOSYNC_API_RATE_LIMIT and that no "
            "other client shares this IP; it resumes by itself",
        )
    reauth = [w for w in workers if w.state == REAUTH_REQUIRED]
    if reauth:
        return Check(FAIL, f"paused until re-authorised: {REAUTH_FIX}")
    blocked = [w for w in workers if w.state == IP_BLOCKED]
    if blocked:
        return Check(FAIL, f"paused: {blocked[0].detail or 'amoCRM blocked this IP (403)'}")
    if pause.paused_until is not None:
        detail = f"rate-limit pause (429) until {when(pause.paused_until)}"
        if pause.paused_until - now > LONG_PAUSE:
            return Check(FAIL, f"{detail}: amoCRM asked for a long wait; it resumes by itself")
        return Check(WARN, detail)
    return Check(OK, "not paused")


async def _backlog(settings: Settings, db: Database) -> Check:
    pending, oldest = await InboxStore(db).backlog()
    limit = settings.health_max_backlog_age
    if oldest is None:
        return Check(OK, f"{pending} pending")
    seconds = (datetime.now(UTC) - oldest).total_seconds()
    if seconds <= limit:
        return Check(OK, f"{pending} pending, oldest {seconds:.0f} s", oldest)
    return Check(
        FAIL,
        f"{pending} pending, oldest {seconds:.0f} s (limit {limit:.0f} s): "
        "see the worker and amoCRM checks",
        oldest,
    )


def _last_webhook(settings: Settings, at: datetime | None, now: datetime) -> Check:
    silence = settings.health_webhook_silence
    if at is None:
        if silence:
            return Check(FAIL, "no webhook from amoCRM received yet: see webhook_subscription")
        return Check(OK, "no webhook from amoCRM received yet")
    ago = now - at
    detail = f"last webhook from amoCRM {age(ago)} ago"
    if silence and ago.total_seconds() > silence:
        return Check(
            FAIL,
            f"{detail} (more than AMOSYNC_HEALTH_WEBHOOK_SILENCE, {age(silence)}): is the "
            "subscription enabled (`amosync webhooks list`) and the URL reachable?",
            at,
        )
    return Check(OK, detail, at)


def _verification(result: dict[str, object] | None) -> Check:
    if result is None:
        return Check(OK, "not run yet")
    at = _parse_time(result.get("at"))
    counts = {k: result.get(k) for k in ("checked", "diverged", "repaired", "unrepaired")}
    summary = ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int))
    unrepaired = counts["unrepaired"]
    if isinstance(unrepaired, int) and unrepaired > 0:
        return Check(
            FAIL,
            f"the last verification found records it could not repair ({summary}): "
            "see its examples on the status page, then `amosync verify --all`",
            at,
        )
    return Check(OK, f"last run: {summary or 'no figures'}", at)


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
