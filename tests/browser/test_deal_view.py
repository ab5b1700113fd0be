"""Reading a deal on the Russian status page in real Chromium: search by the client's phone,
open the deal, see its names, fields, contacts and stage timeline (issue #21)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import insert

from amosync.db.engine import create_sync_engine
from amosync.db.tables import deal_stage_history
from amosync.settings import Settings
from amosync.testing import create_fake_amocrm
from amosync.testing.fake_fields import DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID
from amosync.testing.fake_reference import SECOND_PIPELINE_ID, SECOND_STATUS_ID, SECOND_USER_ID
from amosync.web.app import create_app
from tests.browser.test_status_page import (  # noqa: F401 - `browser` is a fixture
    ADMIN,
    ARTIFACTS,
    LiveSync,
    _db,
    browser,
    open_logged_in,
)
from tests.english_words import english_words
from tests.integration.test_read_api_names import rental_fake
from tests.live_app import serve_app

MOVED_AT = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
def rental(
    make_settings: Callable[..., Settings], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LiveSync, list[int]]]:
    """Five deals stored through the pipeline, names read at once; the 4th deal (client
    "ИРИНА Петрова", phone typed 8 (912) 345-67-89) moved to "Аренда / Бронь" by Борис."""
    monkeypatch.setattr("amosync.reference.job.FIRST_RUN_DELAY", 0.0)
    fake, ids = rental_fake()
    fake.update_lead(ids[3], pipeline_id=SECOND_PIPELINE_ID, status_id=SECOND_STATUS_ID)
    settings = make_settings(admin_token=ADMIN, max_attempts=1, timezone="Europe/Moscow")
    app = create_app(settings, amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)))
    with serve_app(app) as base_url:
        sync = LiveSync(base_url, fake)
        history = [
            (DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, None, None, MOVED_AT - timedelta(hours=3)),
            (
                SECOND_PIPELINE_ID,
                SECOND_STATUS_ID,
                DEFAULT_PIPELINE_ID,
                DEFAULT_STATUS_ID,
                MOVED_AT,
            ),
        ]
        engine = create_sync_engine(db_url)
        with engine.begin() as conn:
            conn.execute(
                insert(deal_stage_history),
                [
                    {
                        "deal_id": ids[3],
                        "pipeline_id": p,
                        "status_id": s,
                        "from_pipeline_id": fp,
                        "from_status_id": fs,
                        "changed_at": at,
                        "changed_by": SECOND_USER_ID if fs else None,
                        "source": "events_api" if fs else "first_seen",
                        "amocrm_event_id": "01JBROWSER00000000000001" if fs else None,
                    }
                    for p, s, fp, fs, at in history
                ],
            )
        engine.dispose()
        # Stored after its history (as after `backfill --history`): no first_seen row then.
        sync.deliver(ids)
        yield sync, ids
        sync.http.close()


def test_search_by_phone_opens_the_deal_with_its_timeline(
    browser: Browser,  # noqa: F811 - the fixture imported above
    rental: tuple[LiveSync, list[int]],
    db_url: str,
) -> None:
    live, ids = rental
    page, errors = open_logged_in(browser, live.base_url, "/?lang=ru")

    page.fill("#search-form input[name=q]", "+7 912 345 67 89")
    page.click("#search-form button[type=submit]")

    result = page.locator("#search-results tr.deal")
    expect(result).to_have_count(1)
    expect(result).to_contain_text("ИРИНА Петрова")
    expect(result.locator("td.stage")).to_have_text("Аренда / Бронь")
    result.locator("a.open-deal").click()

    deal = page.locator("#deal")
    expect(deal).to_have_attribute("data-deal-id", str(ids[3]))
    expect(deal.locator("[data-deal=manager]")).to_have_text("Анна Админова")
    expect(deal.locator("[data-deal=rentprog_id]")).to_have_text("RP-1004")
    expect(deal.locator("#deal-contacts td.phones")).to_have_text("8 (912) 345-67-89")
    expect(deal.locator("#deal-fields")).to_contain_text("RentProg ID")
    steps = deal.locator("#deal-timeline tr.step")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("Воронка / Первичный контакт")
    expect(steps.nth(0).locator("td.duration")).to_have_text("3.0 ч")
    expect(steps.nth(1)).to_contain_text("Аренда / Бронь")
    expect(steps.nth(1)).to_contain_text("2026-06-12 12:00:00 MSK (UTC+03:00)")
    expect(steps.nth(1)).to_contain_text("Борис Менеджеров")
    expect(steps.nth(1)).to_contain_text("сейчас здесь")
    expect(page.locator("#pipelines")).to_contain_text("Сделки по этапам")
    page.screenshot(path=str(ARTIFACTS / f"deal-view-ru-{_db(db_url)}.png"), full_page=True)
    text = deal.evaluate("e => e.innerText")
    assert [] == english_words(text, "fake", "example", "com", "client"), text
    assert [] == errors
