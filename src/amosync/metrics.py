"""Process-local Prometheus counters, bumped by one-line hooks in the pipeline.

They live in their own registry (not prometheus_client's global one) so `/metrics` shows
exactly what amosync defines. Figures that live in the database (backlog, events by status,
token expiry…) are not here: `web/metrics.py` reads them at scrape time, so every instance
reports the same truth. Each hook is a dictionary lookup and an addition: cheap enough for
the webhook path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

from amosync.core.events import WebhookItem

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOK_ITEMS = Counter(
    "amosync_webhook_items_received",
    "Webhook entity items received by this process, by entity, action and outcome "
    "(stored; rejected_<http status> or not_stored with entity and action unknown).",
    ["entity", "action", "outcome"],
    registry=REGISTRY,
)
EVENTS_PROCESSED = Counter(
    "amosync_events_processed",
    "Inbox events this process's worker settled as done.",
    registry=REGISTRY,
)
EVENTS_FAILED = Counter(
    "amosync_events_failed",
    "Inbox events this process's worker marked failed (out of attempts or unfetchable).",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "amosync_amocrm_requests",
    "amoCRM API requests sent by this process, by HTTP status (0 = no response).",
    ["status"],
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "amosync_rate_limit_waits",
    "Times the rate limiter (in-process or shared) made a request wait (window or 429 pause).",
    registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "amosync_rate_limit_wait_seconds",
    "Seconds requests spent waiting for the client-side rate limiter.",
    registry=REGISTRY,
)
UPSERT_SECONDS = Histogram(
    "amosync_upsert_seconds",
    "Time to apply one fetched chunk (upsert, links, deletions, settle) in one transaction.",
    ["entity"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
VERIFY_CHECKED = Counter(
    "amosync_verify_checked",
    "Stored rows this process compared with amoCRM (amosync verify, background verification).",
    ["entity"],
    registry=REGISTRY,
)
VERIFY_DIVERGED = Counter(
    "amosync_verify_diverged",
    "Compared rows that differed from amoCRM, by entity.",
    ["entity"],
    registry=REGISTRY,
)
VERIFY_REPAIRED = Counter(
    "amosync_verify_repaired",
    "Diverged rows that matched amoCRM when read back after the repair, by entity.",
    ["entity"],
    registry=REGISTRY,
)


# The entity and action names amoCRM sends (the webhook events amoCRM's docs list, entities
# as normalised by core/webhook.py). Anything else is counted as `other`: names come from the
# request body, and 2,000 invented kinds once grew /metrics to 8.6 MB and 80,000 series.
KNOWN_ENTITIES = frozenset(
    {
        "leads",
        "contacts",
        "companies",
        "customers",
        "tasks",
        "unsorted",
        "message",
        "talk",
        "catalogs",
    }
)
KNOWN_ACTIONS = frozenset({"add", "update", "delete", "restore", "status", "responsible", "note"})
OTHER = "other"

# The `stored` child of WEBHOOK_ITEMS per (entity, action): `labels()` costs more than the
# increment itself. Bounded like the counter: at most (entities + 1) × (actions + 1) pairs.
_stored_children: dict[tuple[str, str], Counter] = {}


def _label_pair(entity: str, action: str) -> tuple[str, str]:
    return (
        entity if entity in KNOWN_ENTITIES else OTHER,
        action if action in KNOWN_ACTIONS else OTHER,
    )


def webhook_stored(items: Iterable[WebhookItem]) -> None:
    """One increment per (entity, action) pair of a stored webhook body."""
    tally: dict[tuple[str, str], int] = {}
    for item in items:
        pair = _label_pair(item.entity, item.action)
        tally[pair] = tally.get(pair, 0) + 1
    for pair, n in tally.items():
        child = _stored_children.get(pair)
        if child is None:
            child = _stored_children[pair] = WEBHOOK_ITEMS.labels(*pair, "stored")
        child.inc(n)


def webhook_rejected(status: int) -> None:
    WEBHOOK_ITEMS.labels("", "", f"rejected_{status}").inc()


def webhook_not_stored() -> None:
    """The database could not take the body (answered 503; amoCRM retries)."""
    WEBHOOK_ITEMS.labels("", "", "not_stored").inc()


def api_request(status: int) -> None:
    API_REQUESTS.labels(str(status)).inc()


def rate_limit_wait(seconds: float) -> None:
    """A limiter is about to sleep `seconds` before letting a request go."""
    RATE_LIMIT_WAITS.inc()
    RATE_LIMIT_WAIT_SECONDS.inc(max(seconds, 0.0))


def upsert_done(entity: str, started: float) -> None:
    """`started` is a `time.perf_counter()` reading taken before the transaction began."""
    UPSERT_SECONDS.labels(entity).observe(time.perf_counter() - started)


def verify_counted(entity: str, checked: int, diverged: int, repaired: int) -> None:
    """One verified batch's figures (catchup/verify.py)."""
    VERIFY_CHECKED.labels(entity).inc(checked)
    VERIFY_DIVERGED.labels(entity).inc(diverged)
    VERIFY_REPAIRED.labels(entity).inc(repaired)
