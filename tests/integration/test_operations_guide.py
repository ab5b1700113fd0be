"""docs/OPERATIONS.md names exactly the metrics `/metrics` serves, so alerts built from the
guide match what Prometheus scrapes."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from amosync.catchup.verify import VerifyReport
from amosync.catchup.verify_state import write_last
from amosync.db.database import Database
from amosync.settings import Settings
from amosync.web.app import create_app
from tests.integration.test_metrics import jwt_expiring_in

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"
ADMIN = "guide-admin-token-0123456789"


def documented_metrics() -> set[str]:
    """Metric names in the guide's /metrics table, counters without their `_total`."""
    section = GUIDE.read_text().split("### `/metrics`", 1)[1].split("\n### ", 1)[0]
    names = re.findall(r"`(amosync_[a-z_]+)[{`]", section)
    return {re.sub(r"_total$", "", name) for name in names}


async def store_a_verification(database: Database) -> None:
    """The `amosync_verify_last_*` gauges show once a verification result is stored."""
    async with database.write() as conn:
        await write_last(conn, VerifyReport(finished_at=datetime.now(UTC)).as_json())


async def test_guide_lists_every_served_metric_and_no_other(
    make_settings: Callable[..., Settings],
) -> None:
    """The metric families of a real scrape equal the names in the guide's table."""
    # A token that tells its expiry and one stored webhook: every conditional family shows.
    # No worker: the counters it feeds exist in every process, and none is needed here.
    # A stored verification result: its gauges show too.
    settings = make_settings(admin_token=ADMIN, amocrm_long_lived_token=jwt_expiring_in(86400))
    app = create_app(settings, run_worker=False)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://amosync") as client,
    ):
        stored = await client.post(
            "/amocrm/s3cret-path-0123456789",
            content=b"leads[add][0][id]=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        await store_a_verification(app.state.db)
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    served = {
        family.name
        for family in text_string_to_metric_families(response.text)
        if not family.name.endswith("_created")  # prometheus_client's counter timestamps
    }

    assert (200, 200) == (stored.status_code, response.status_code)
    assert sorted(served) == sorted(documented_metrics())
