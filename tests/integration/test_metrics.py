"""GET /metrics: parseable Prometheus text with this process's counters and the DB's figures."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from amosync import metrics
from amosync.core.webhook import parse_webhook
from amosync.db.database import Database
from amosync.settings import Settings
from tests.integration.test_read_api import ADMIN, AUTH, SECRET_PATH, api
from tests.live_app import demo_fake, fail_one_event, seed_through_pipeline

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, sorted labels); the parser raises on anything malformed."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=AUTH)
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def jwt_expiring_in(seconds: int) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part({'exp': int(time.time()) + seconds})}.c2ln"


async def test_metrics_hold_database_truth_and_process_counters(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """After 3 deals, 1 failed fetch and 1 refused webhook: DB gauges say so, and counters grew
    by what happened (1 request/s makes the 2nd to 4th API call wait for the limiter: leads,
    their contacts, their company, the failed fetch)."""
    fake = demo_fake(3)
    settings = make_settings(admin_token=ADMIN, max_attempts=1, api_rate_limit=1.0)
    async with api(settings, fake) as client:
        before = await scrape(client)
        (first, *_) = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        await fail_one_event(client, database, fake, SECRET_PATH, first)
        refused = await client.post("/amocrm/wrong-secret", content=b"leads[add][0][id]=1")
        after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert 3.0 == after[("amosync_deals", ())]
    assert 3.0 == after[("amosync_deals_with_rentprog_id", ())]
    assert 3.0 == after[("amosync_contacts", ())]
    assert 1.0 == after[("amosync_events", (("status", "failed"),))]
    assert 0.0 == after[("amosync_backlog_events", ())]
    assert 1.0 == after[("amosync_amocrm_requests_last_hour", (("status", "400"),))]
    assert 1.0 == after[("amosync_database_up", ())]
    assert 4.0 == grew(
        "amosync_webhook_items_received_total", entity="leads", action="update", outcome="stored"
    )
    assert 403 == refused.status_code
    assert 1.0 == grew(
        "amosync_webhook_items_received_total", entity="", action="", outcome="rejected_403"
    )
    assert 1.0 == grew("amosync_events_failed_total")
    # 3 deals + their 3 linked contacts + the 1 company a deal names
    assert 7.0 == grew("amosync_events_processed_total")
    assert 1.0 == grew("amosync_amocrm_requests_total", status="400")
    assert 1.0 <= grew("amosync_rate_limit_waits_total")  # a limiter may wait in steps
    assert 0.5 < grew("amosync_rate_limit_wait_seconds_total") < 4.0
    assert 2.0 == grew("amosync_upsert_seconds_count", entity="leads") + grew(
        "amosync_upsert_seconds_count", entity="contacts"
    )


async def test_any_instance_reports_the_database_figures(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A second app that saw none of the traffic reports the same deals and events."""
    fake = demo_fake(2)
    async with api(make_settings(admin_token=ADMIN), fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        first = await scrape(client)
    other = make_settings(admin_token=ADMIN, amocrm_long_lived_token=jwt_expiring_in(86400))
    async with api(other, demo_fake(0)) as client:
        second = await scrape(client)

    for name in ("amosync_deals", "amosync_contacts", "amosync_backlog_events"):
        assert first[(name, ())] == second[(name, ())]
    assert (
        first[("amosync_events", (("status", "done"),))]
        == second[("amosync_events", (("status", "done"),))]
    )
    left = second[("amosync_token_seconds_to_expiry", (("kind", "long_lived"),))]
    assert 86000 < left <= 86400


async def test_unreadable_database_is_reported_not_hidden(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """An unmigrated database gives amosync_database_up 0 and no made-up figures."""
    settings = make_settings(admin_token=ADMIN, database_url=f"sqlite:///{tmp_path}/empty.db")
    async with api(settings, demo_fake(0)) as client:
        samples = await scrape(client)

    assert 0.0 == samples[("amosync_database_up", ())]
    assert ("amosync_deals", ()) not in samples


def test_stored_items_count_per_entity_and_action_on_every_call() -> None:
    """Each (entity, action) of a body grows by its number of items, on the first call (new
    label pair) and on later ones (the child already exists), and no other pair moves."""
    body = (
        b"leads[update][0][id]=1&leads[update][1][id]=2&leads[add][0][id]=3"
        b"&contacts[add][0][id]=4&leads[update][2][id]=5"
    )
    items = parse_webhook(body).items
    pairs = [("leads", "update"), ("leads", "add"), ("contacts", "add"), ("companies", "add")]

    def stored() -> list[float]:
        return [
            metrics.REGISTRY.get_sample_value(
                "amosync_webhook_items_received_total",
                {"entity": entity, "action": action, "outcome": "stored"},
            )
            or 0.0
            for entity, action in pairs
        ]

    before = stored()
    metrics.webhook_stored(items)
    metrics.webhook_stored(items)
    metrics.webhook_stored(items[:1])
    after = stored()

    assert [7.0, 2.0, 2.0, 0.0] == [a - b for a, b in zip(after, before, strict=True)]
