"""docs/READING_DATA.md and its English twin: every SQL recipe runs on SQLite and PostgreSQL
against deals stored through amosync, and both languages carry the same SQL.

The SQL comes out of the documents themselves, so a recipe changed there is the recipe run
here. A block fenced ```sql runs on both databases; ```sql sqlite or ```sql postgresql on
that one only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from amosync.db.database import Database
from amosync.db.tables import deal_stage_history
from amosync.settings import Settings
from amosync.testing.fake_fields import DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, field_value
from amosync.testing.fake_reference import SECOND_PIPELINE_ID, SECOND_STATUS_ID, SECOND_USER_ID
from tests.integration.test_read_api import SECRET_PATH, api
from tests.integration.test_read_api_names import rental_fake, wait_for_names
from tests.live_app import seed_through_pipeline

DOCS = Path(__file__).parents[2] / "docs"
GUIDES = ("READING_DATA.md", "READING_DATA.en.md")
_BLOCK = re.compile(r"^```sql([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DIALECTS = ("sqlite", "postgresql")


def recipes(name: str) -> list[tuple[tuple[str, ...], str]]:
    """(dialects, SQL) of every SQL block of the guide, in order."""
    found = []
    for info, sql in _BLOCK.findall((DOCS / name).read_text(encoding="utf-8")):
        only = tuple(info.split())
        assert set(only) <= set(DIALECTS), f"{name}: unknown fence ```sql{info}"
        found.append((only or DIALECTS, sql.strip()))
    return found


def test_both_languages_carry_the_same_recipes() -> None:
    ru, en = (recipes(name) for name in GUIDES)

    assert len(en) >= 10
    assert ru == en


@pytest.fixture
def settings(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr("amosync.reference.job.FIRST_RUN_DELAY", 0.0)
    return make_settings(admin_token=None, max_attempts=1)


async def stored_rental_account(settings: Settings, database: Database) -> list[int]:
    """The five deals of `rental_fake` stored through the worker, one won, one with a car
    class and a VIP tag, and the booked one's stage history (first seen two days ago, moved
    20 hours later)."""
    fake, ids = rental_fake()
    car_class = next(f for f in fake.lead_custom_fields if f["name"] == "Класс авто")
    fake.update_lead(ids[2], custom_fields_values=[field_value(car_class, "Комфорт")], tags=["VIP"])
    fake.update_lead(ids[0], status_id=142)
    start = datetime.now(UTC) - timedelta(days=2)
    moves = [
        (DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, None, None, start, None, "first_seen", None),
        (
            SECOND_PIPELINE_ID,
            SECOND_STATUS_ID,
            DEFAULT_PIPELINE_ID,
            DEFAULT_STATUS_ID,
            start + timedelta(hours=20),
            SECOND_USER_ID,
            "events_api",
            "01JDOCRECIPE000000000001",
        ),
    ]
    async with database.write() as conn:
        await conn.execute(
            insert(deal_stage_history),
            [
                {
                    "deal_id": ids[1],
                    "pipeline_id": p,
                    "status_id": s,
                    "from_pipeline_id": fp,
                    "from_status_id": fs,
                    "changed_at": at,
                    "changed_by": by,
                    "source": source,
                    "amocrm_event_id": event,
                }
                for p, s, fp, fs, at, by, source, event in moves
            ],
        )
    # Stored after its history, as when `backfill --history` ran first: the upsert then
    # adds no first_seen row for a deal whose history already ends in its stage.
    async with api(settings, fake) as client:
        await wait_for_names(client)
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
    return ids


async def test_every_recipe_runs_and_answers(settings: Settings, database: Database) -> None:
    await stored_rental_account(settings, database)
    dialect = database.dialect
    answers: dict[str, list[Any]] = {}
    async with database.read() as conn:
        for dialects, sql in recipes(GUIDES[0]):
            if dialect in dialects:
                answers[sql] = [tuple(r) for r in (await conn.exec_driver_sql(sql)).all()]

    empty = [sql for sql, rows in answers.items() if not rows]
    assert [] == empty, "recipes that found nothing in the seeded account"

    def answer(marker: str) -> list[Any]:
        (rows,) = [rows for sql, rows in answers.items() if marker in sql]
        return rows

    assert ("Аренда", "Бронь", 1) in answer("status_name, COUNT(*) AS deals")
    (deal,) = answer(
        "main_contact_name, main_contact_phone\nFROM amocrm_deals_named\nWHERE rentprog_id"
    )
    assert ("Аренда", "Бронь", "Борис Менеджеров", "Клиент 2", "+79000000002") == deal[2:]
    stages = answer("AS moved_by")
    assert [("Первичный контакт", 20.0), ("Бронь", None)] == [
        (r[3], float(r[-1]) if r[1] is not None else None) for r in stages
    ]
    assert "Борис Менеджеров" == stages[1][4]
    (managers_top, *_) = answer("AS in_progress")
    assert ("Анна Админова", 2) == tuple(managers_top[:2])
    (won_row,) = [r for r in answer("AS won_percent") if r[0] == "Воронка"]
    assert (4, 1, 1, 25.0) == (won_row[2], won_row[3], won_row[4], float(won_row[5]))
    assert [("Дорого", 1)] == answer("AS reason")
