"""The status page reads deals without amoCRM: search by anything, the deal view with names,
fields, contacts and timeline, and deals per stage; in Russian, times in AMOSYNC_TIMEZONE."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from amosync.db.database import Database
from amosync.db.tables import deal_stage_history
from amosync.settings import Settings
from amosync.testing.fake_fields import DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, field_value
from amosync.testing.fake_reference import SECOND_PIPELINE_ID, SECOND_STATUS_ID
from tests.english_words import english_words
from tests.integration.test_read_api import SECRET_PATH, api
from tests.integration.test_read_api_names import rental_fake, wait_for_names
from tests.integration.test_status_page import visible_text
from tests.live_app import seed_through_pipeline


@pytest.fixture
def settings(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr("amosync.reference.job.FIRST_RUN_DELAY", 0.0)
    return make_settings(admin_token=None, max_attempts=1, timezone="Europe/Moscow")


async def test_search_by_phone_then_the_deal_view_in_russian(
    settings: Settings, database: Database
) -> None:
    fake, ids = rental_fake()
    definition = next(f for f in fake.lead_custom_fields if f["name"] == "Класс авто")
    fake.update_lead(
        ids[3],
        pipeline_id=SECOND_PIPELINE_ID,
        status_id=SECOND_STATUS_ID,
        custom_fields_values=[field_value(definition, "Комфорт")],
    )
    moved_at = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
    async with database.write() as conn:
        await conn.execute(
            insert(deal_stage_history),
            [
                {
                    "deal_id": ids[3],
                    "pipeline_id": DEFAULT_PIPELINE_ID,
                    "status_id": DEFAULT_STATUS_ID,
                    "from_pipeline_id": None,  # every row names every column: executemany
                    "from_status_id": None,
                    "changed_at": moved_at - timedelta(hours=3),
                    "changed_by": None,
                    "source": "first_seen",
                    "amocrm_event_id": None,
                },
                {
                    "deal_id": ids[3],
                    "pipeline_id": SECOND_PIPELINE_ID,
                    "status_id": SECOND_STATUS_ID,
                    "from_pipeline_id": DEFAULT_PIPELINE_ID,
                    "from_status_id": DEFAULT_STATUS_ID,
                    "changed_at": moved_at,
                    "changed_by": 0,
                    "source": "events_api",
                    "amocrm_event_id": "01JEVENTPAGE000000000001",
                },
            ],
        )
    async with api(settings, fake) as client:
        await wait_for_names(client)
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        found = (await client.get("/", params={"q": "+7 912 345-67-89", "lang": "ru"})).text
        view = (await client.get("/", params={"deal": str(ids[3]), "lang": "ru"})).text
        missing = (await client.get("/", params={"deal": "424242", "lang": "ru"})).text

    assert f'data-deal-id="{ids[3]}"' in found
    assert f'data-deal-id="{ids[0]}"' not in found
    assert f"deal={ids[3]}" in found  # each result opens its deal view
    assert "Аренда / Бронь" in found
    deal = view[view.index('<section id="deal"') : view.index('<section id="pipelines"')]
    assert "ИРИНА Петрова" in deal
    assert "8 (912) 345-67-89" in deal
    assert "Класс авто" in deal
    assert "Комфорт" in deal
    assert "Анна Админова" in deal
    assert "fake" in deal
    timeline = deal[deal.index('id="deal-timeline"') :]
    assert "Воронка / Первичный контакт" in timeline
    assert "Аренда / Бронь" in timeline
    assert "2026-06-12 12:00:00 MSK (UTC+03:00)" in timeline  # entered and left, Moscow time
    assert "3.0 ч" in timeline  # time in the first stage
    assert "amoCRM (робот)" in timeline
    assert "событие amoCRM" in timeline
    assert "сейчас здесь" in timeline
    assert [] == english_words(visible_text(deal), "fake", "Email", "example", "com", "client")
    assert "Сделки 424242 нет в базе." in missing


async def test_pipeline_summary_counts_deals_per_stage_by_name(
    settings: Settings, database: Database
) -> None:
    fake, _ = rental_fake()
    async with api(settings, fake) as client:
        await wait_for_names(client)
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        page = (await client.get("/", params={"lang": "ru"})).text

    summary = page[page.index('id="pipelines"') : page.index('id="live"')]
    assert "Сделки по этапам" in summary
    row = summary[summary.index(f'data-status-id="{DEFAULT_STATUS_ID}"') :].split("</tr>")[0]
    assert "Первичный контакт" in row
    assert "<td>3</td>" in row
    assert "Аренда" in summary
    assert "Бронь" in summary
