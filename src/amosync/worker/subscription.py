"""Is amoCRM still sending us webhooks? The hourly subscription check behind `/health`.

amoCRM switches a webhook off by itself after more than 100 failed deliveries in two hours
(or on an IP block) and only tells the account's admins. Nothing would reach amosync from
then on, so the worker looks once an hour (one API call) whether our destination is
subscribed and enabled, and stores the answer in `amosync_state`, where `/health`, `doctor`
and the status page read it from any process.

The stored destination is masked; a hash tells whether the state is about the URL
configured now (after a change of `AMOSYNC_PUBLIC_URL` an old answer means nothing).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from amosync.amocrm.client import AmoClient
from amosync.amocrm.webhooks import Subscription, list_subscriptions, mask_url, our_destination
from amosync.core.humanize import age as format_age
from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import sync_state
from amosync.errors import AmoCRMError
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob

log = logging.getLogger(__name__)

STATE_KEY = "webhook_subscription"
CHECK_INTERVAL = 3600.0
FIRST_CHECK_DELAY = 5.0

Status = Literal["subscribed", "disabled", "missing", "unknown"]
_STATUSES: tuple[Status, ...] = ("subscribed", "disabled", "missing", "unknown")


@dataclass(frozen=True)
class SubscriptionState:
    """The last answer about our subscription. `unknown`: the check itself failed (`detail`)."""

    status: Status
    checked_at: datetime
    destination: str  # masked, safe to show
    destination_hash: str
    missing_settings: tuple[str, ...] = ()
    detail: str | None = None

    def is_about(self, destination: str) -> bool:
        return self.destination_hash == destination_hash(destination)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "destination": self.destination,
            "destination_hash": self.destination_hash,
            "missing_settings": list(self.missing_settings),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, value: object) -> SubscriptionState | None:
        """The state from its stored JSON; None when it is not one we wrote."""
        if not isinstance(value, dict):
            return None
        status = value.get("status")
        try:
            checked_at = datetime.fromisoformat(str(value.get("checked_at")))
        except ValueError:
            return None
        if status not in _STATUSES or checked_at.tzinfo is None:
            return None
        missing = value.get("missing_settings")
        detail = value.get("detail")
        return cls(
            status=status,
            checked_at=checked_at,
            destination=str(value.get("destination") or ""),
            destination_hash=str(value.get("destination_hash") or ""),
            missing_settings=tuple(str(m) for m in missing) if isinstance(missing, list) else (),
            detail=detail if isinstance(detail, str) else None,
        )


def destination_hash(destination: str) -> str:
    return hashlib.sha256(destination.encode()).hexdigest()[:16]


def assess(
    subscriptions: list[Subscription], destination: str, secret: str | None, now: datetime
) -> SubscriptionState:
    """What the account's subscriptions say about ours (pure)."""
    ours = [s for s in subscriptions if s.destination == destination]
    masked = mask_url(destination, secret)
    digest = destination_hash(destination)
    if not ours:
        return SubscriptionState("missing", now, masked, digest)
    hook = ours[0]
    status: Status = "disabled" if hook.disabled else "subscribed"
    return SubscriptionState(status, now, masked, digest, tuple(hook.missing_settings()))


async def subscription_state(db: Database) -> SubscriptionState | None:
    """The last stored answer, or None when no process has checked yet."""
    async with db.read() as conn:
        value = await conn.scalar(select(sync_state.c.value).where(sync_state.c.key == STATE_KEY))
    return SubscriptionState.from_json(value) if value is not None else None


async def save_subscription_state(db: Database, state: SubscriptionState) -> None:
    now = datetime.now(UTC)
    async with db.write() as conn:
        stmt = upsert_insert(conn, sync_state).values(
            key=STATE_KEY, value=state.as_json(), updated_at=now
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[sync_state.c.key],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )


async def check_subscription(
    settings: Settings, db: Database, client: AmoClient
) -> SubscriptionState | None:
    """Ask amoCRM (one call) and store the answer; None when no destination is configured.

    A failed call is stored as `unknown` only when nothing is known about this URL yet: a
    passing network error must not hide that amoCRM disabled the webhook an hour ago.
    """
    destination = our_destination(settings)
    if destination is None:
        return None
    secret = settings.webhook_secret_text
    now = datetime.now(UTC)
    try:
        subscriptions = await list_subscriptions(client, destination)
    except AmoCRMError as exc:
        log.warning(
            "subscription_check_failed",
            extra={"event": "subscription_check_failed", "error": str(exc)[:300]},
        )
        previous = await subscription_state(db)
        if previous is not None and previous.is_about(destination):
            return previous
        state = SubscriptionState(
            "unknown",
            now,
            mask_url(destination, secret),
            destination_hash(destination),
            detail=str(exc)[:300],
        )
    else:
        state = assess(subscriptions, destination, secret, now)
    await save_subscription_state(db, state)
    if state.status in ("missing", "disabled"):
        event = f"webhook_subscription_{state.status}"
        log.warning(event, extra={"event": event, "url": state.destination})
    return state


def subscription_job(settings: Settings, db: Database, client: AmoClient) -> PeriodicJob | None:
    """The hourly check, or None when there is no public URL and secret to check for."""
    destination = our_destination(settings)
    if destination is None:
        return None

    async def run() -> None:
        # Several workers share the answer: skip when another process checked recently.
        previous = await subscription_state(db)
        fresh_until = datetime.now(UTC) - timedelta(seconds=CHECK_INTERVAL * 0.9)
        if (
            previous is not None
            and previous.is_about(destination)
            and previous.status != "unknown"
            and previous.checked_at > fresh_until
        ):
            return
        await check_subscription(settings, db, client)

    return PeriodicJob("webhook_subscription", CHECK_INTERVAL, run, first_delay=FIRST_CHECK_DELAY)


def subscription_health(
    settings: Settings, state: SubscriptionState | None, now: datetime | None = None
) -> tuple[bool, str] | None:
    """`(ok, detail)` for `/health`; None when there is nothing to report (no public URL).

    Missing or disabled fails; unknown or not yet checked does not.
    """
    destination = our_destination(settings)
    if destination is None:
        return None
    if state is None or not state.is_about(destination):
        return True, "not checked yet (the worker checks hourly; `amosync doctor` checks now)"
    age = format_age((now or datetime.now(UTC)) - state.checked_at)
    if state.status == "missing":
        return (
            False,
            f"not subscribed in amoCRM (checked {age} ago): run `amosync webhooks register`",
        )
    if state.status == "disabled":
        return (
            False,
            f"disabled by amoCRM after failed deliveries (checked {age} ago): fix the cause, "
            "then run `amosync webhooks register` to re-enable it",
        )
    if state.status == "unknown":
        return True, f"unknown, the check failed {age} ago: {state.detail}"
    detail = f"subscribed and enabled (checked {age} ago)"
    if state.missing_settings:
        detail += "; not sent: " + ", ".join(state.missing_settings) + " (re-run register)"
    return True, detail
