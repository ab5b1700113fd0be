"""GET /metrics: Prometheus text format.

Two parts: this process's counters (amosync/metrics.py: webhooks received, events processed
and failed by its worker, API requests by status, rate-limit waits, upsert latency), and
figures read from the database at scrape time by a collector, so every instance (web or
worker, one or many) reports the same truth: events by status, backlog, oldest pending age,
deals, contacts, API requests in the last hour, token seconds to expiry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from amosync import metrics
from amosync.amocrm.token_info import token_expiry
from amosync.db.database import Database
from amosync.inbox.store import STATUSES
from amosync.settings import Settings
from amosync.stats import SyncStats, collect_stats
from amosync.web.access import AccessPolicy


@dataclass(frozen=True)
class DbSnapshot:
    """What the database said at scrape time (None when it could not be read)."""

    stats: SyncStats | None
    token_seconds_left: float | None
    token_kind: str | None


class DatabaseCollector(Collector):
    """Turns one snapshot into gauges; built per scrape, so `collect` never does I/O."""

    def __init__(self, snapshot: DbSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._snapshot
        yield GaugeMetricFamily(
            "amosync_database_up",
            "1 when the database answered this scrape's queries.",
            value=1 if snap.stats is not None else 0,
        )
        if snap.stats is not None:
            yield from _stats_gauges(snap.stats)
        if snap.token_seconds_left is not None and snap.token_kind is not None:
            token = GaugeMetricFamily(
                "amosync_token_seconds_to_expiry",
                "Seconds until amoCRM access is lost unless someone acts (negative: expired); "
                "absent when the token does not say.",
                labels=["kind"],
            )
            token.add_metric([snap.token_kind], snap.token_seconds_left)
            yield token


def _stats_gauges(stats: SyncStats) -> Iterator[GaugeMetricFamily]:
    by_status = GaugeMetricFamily(
        "amosync_events", "Inbox events in the database, by status.", labels=["status"]
    )
    for status in STATUSES:
        by_status.add_metric([status], stats.events_by_status.get(status, 0))
    yield by_status
    yield GaugeMetricFamily(
        "amosync_backlog_events", "Pending events (webhooks not yet applied).", value=stats.backlog
    )
    yield GaugeMetricFamily(
        "amosync_oldest_pending_age_seconds",
        "Age of the oldest pending event; 0 when nothing is pending.",
        value=stats.oldest_pending_age_seconds or 0.0,
    )
    yield GaugeMetricFamily("amosync_deals", "Deals stored (deleted included).", value=stats.deals)
    yield GaugeMetricFamily(
        "amosync_deals_with_rentprog_id",
        "Live deals that carry a RentProg ID.",
        value=stats.deals_with_rentprog_id,
    )
    yield GaugeMetricFamily("amosync_contacts", "Contacts stored.", value=stats.contacts)
    api = GaugeMetricFamily(
        "amosync_amocrm_requests_last_hour",
        "amoCRM API requests by all processes in the last hour, by HTTP status.",
        labels=["status"],
    )
    for code, n in sorted(stats.api_requests_by_status_last_hour.items()):
        api.add_metric([str(code)], n)
    yield api
    yield from _verify_gauges(stats.last_verify)


def _verify_gauges(last: dict[str, Any] | None) -> Iterator[GaugeMetricFamily]:
    """The last verification (any process's) from `verify.last`; absent before the first."""
    if last is None:
        return
    for name in ("checked", "diverged", "repaired", "unrepaired"):
        yield GaugeMetricFamily(
            f"amosync_verify_last_{name}",
            f"Rows {name} by the last verification (amosync verify or the worker's).",
            value=last[name],
        )
    yield GaugeMetricFamily(
        "amosync_verify_last_timestamp_seconds",
        "When the last verification finished (Unix time).",
        value=datetime.fromisoformat(str(last["at"])).timestamp(),
    )


async def snapshot(settings: Settings, db: Database) -> DbSnapshot:
    try:
        stats = await collect_stats(db)
        token = await token_expiry(settings, db)
    except SQLAlchemyError:
        return DbSnapshot(None, None, None)
    left = token.seconds_left() if token is not None else None
    return DbSnapshot(stats, left, token.kind if token is not None else None)


def render(snap: DbSnapshot) -> bytes:
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(DatabaseCollector(snap))
    return generate_latest(metrics.REGISTRY) + generate_latest(scrape)


class MetricsEndpoint:
    def __init__(self, settings: Settings, db: Database, access: AccessPolicy) -> None:
        self._settings = settings
        self._db = db
        self._access = access

    async def handle(self, request: Request) -> Response:
        verdict = self._access.check_api(request)
        if not verdict.allowed:
            return verdict.refusal()
        body = render(await snapshot(self._settings, self._db))
        return Response(body, media_type=CONTENT_TYPE_LATEST)
