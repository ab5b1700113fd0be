"""The last verification on /metrics and the status page (EN and RU), from the database."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from amosync.catchup.budget import VERIFY
from amosync.cli.verify import verify_rows
from amosync.db.database import Database
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import create_fake_amocrm
from tests.integration.test_metrics import scrape
from tests.integration.test_read_api import ADMIN, api
from tests.integration.test_verify import RENTPROG, store
from tests.live_app import demo_fake


async def test_metrics_and_page_show_the_last_verification(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    fake = demo_fake(0)
    lead = fake.add_lead(name="before")
    settings = make_settings(admin_token=None)
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    client = build_client(settings, database, purpose=VERIFY, transport=transport)
    await store(database, client, "leads", [lead["id"]])
    fake.update_lead(lead["id"], name="after")
    async with api(make_settings(admin_token=ADMIN), fake) as web:
        before = await scrape(web)
        await verify_rows(database, client, RENTPROG, ("leads", "contacts"), None)
        after = await scrape(web)
    async with api(settings, fake) as web:
        english = (await web.get("/?lang=en")).text
        russian = (await web.get("/?lang=ru")).text
    await client.aclose()

    def grew(name: str) -> float:
        key = (name, (("entity", "leads"),))
        return after[key] - before.get(key, 0.0)

    assert (1.0, 1.0, 1.0) == (
        grew("amosync_verify_checked_total"),
        grew("amosync_verify_diverged_total"),
        grew("amosync_verify_repaired_total"),
    )
    assert 1.0 == after[("amosync_verify_last_checked", ())]
    assert 0.0 == after[("amosync_verify_last_unrepaired", ())]
    assert ("amosync_verify_last_checked", ()) not in before
    section = english[english.index('id="verification"') :].split("</section>")[0]
    assert "Verification against amoCRM" in section
    assert 'data-verify="repaired">1<' in section
    assert f"leads {lead['id']} (name, updated_at" in section
    assert "leads: 1 of 1 verified" in section
    assert "The worker verifies 10 batches an hour (up to 2500 rows)." in section
    assert "Сверка с amoCRM" in russian
    assert "сделки: сверено 1 из 1" in russian


async def test_page_says_when_no_verification_ran(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    async with api(make_settings(admin_token=None, verify_calls_per_hour=0), demo_fake(0)) as web:
        page = (await web.get("/?lang=en")).text

    assert 'id="verify-never"' in page
    assert "Background verification is off" in page
