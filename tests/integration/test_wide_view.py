"""`amocrm_deals_wide` (AMOSYNC_DEAL_FIELD_COLUMNS) on SQLite and PostgreSQL: typed alias
columns, values after an upsert, recreated when the setting changes, dropped when unset,
retyped by the reference refresh, and refused when an alias or id is wrong."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, select, text

from amosync.amocrm import AmoClient
from amosync.catchup.budget import REFERENCE
from amosync.core.field_columns import FieldColumn, parse_field_columns
from amosync.db import migrate
from amosync.db.database import Database
from amosync.db.engine import create_sync_engine
from amosync.db.tables import sync_state
from amosync.db.wide_view import STATE_KEY, VIEW, FieldColumnsError, Plan
from amosync.reference.job import reference_refresher
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.testing.fake_custom_fields import lead_field
from tests.integration.test_verify import store

Factory = Callable[..., Settings]
START, CAR, DAYS, SEAT, EXTRAS = 800001, 800002, 800003, 800004, 800005
SETTING = f"rental_start:{START},car:{CAR},days:{DAYS},child_seat:{SEAT},extras:{EXTRAS}"
ALIASES = ["rental_start", "car", "days", "child_seat", "extras"]
# What information_schema (PostgreSQL) and PRAGMA table_info (SQLite) say of each alias.
# SQLite declares a column's type only when the view selects a table column (checkbox and
# multiselect are expressions: no declared type; SQLite has no boolean type anyway).
TYPES = {
    "postgresql": ["timestamp with time zone", "text", "double precision", "boolean", "text"],
    "sqlite": ["DATETIME", "TEXT", "FLOAT", "", ""],
}


@pytest.fixture
def fake() -> FakeAmoState:
    state = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: time.time() - 5)
    state.lead_custom_fields += [
        lead_field(START, "Начало аренды", "date"),
        lead_field(CAR, "Машина", "select"),
        lead_field(DAYS, "Дней", "numeric"),
        lead_field(SEAT, "Детское кресло", "checkbox"),
        lead_field(EXTRAS, "Опции", "multiselect"),
    ]
    return state


@pytest.fixture
async def clients(
    make_settings: Factory, database: Database, fake: FakeAmoState
) -> AsyncIterator[tuple[AmoClient, AmoClient]]:
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    settings = make_settings()
    loader = build_client(settings, database, purpose="webhook", transport=transport)
    checker = build_client(settings, database, purpose=REFERENCE, transport=transport)
    yield loader, checker
    await loader.aclose()
    await checker.aclose()


@pytest.fixture(autouse=True)
def _no_view_left(db_url: str) -> Iterator[None]:
    """The run's PostgreSQL database is shared: a view left on it would stop other tests'
    downgrades (PostgreSQL refuses to drop what a view uses)."""
    yield
    migrate.sync_view(db_url, ())


def sync(db_url: str, setting: str | None) -> Plan:
    return migrate.sync_view(db_url, parse_field_columns(setting))


async def refresh(make_settings: Factory, database: Database, client: AmoClient, **kw: Any) -> None:
    settings: Settings = make_settings(**kw)
    assert await reference_refresher(settings, database, client).run(force=True) is not None


def described(db_url: str) -> list[tuple[str, str]]:
    """(name, type) of each column of the view, as a BI tool would read them."""
    engine = create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                rows = conn.execute(
                    text(
                        "SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_name = :view ORDER BY ordinal_position"
                    ),
                    {"view": VIEW},
                )
            else:
                rows = conn.execute(
                    text("SELECT name, type FROM pragma_table_info(:view)"), {"view": VIEW}
                )
            return [(str(name), str(kind)) for name, kind in rows]
    finally:
        engine.dispose()


def view_names(db_url: str) -> list[str]:
    engine = create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(inspect(conn).get_view_names())
    finally:
        engine.dispose()


def lead_values(when: datetime) -> list[dict[str, Any]]:
    def one(field_id: int, field_type: str, *values: dict[str, Any]) -> dict[str, Any]:
        return {
            "field_id": field_id,
            "field_name": str(field_id),
            "field_code": None,
            "field_type": field_type,
            "values": list(values),
        }

    return [
        one(START, "date", {"value": int(when.timestamp())}),
        one(CAR, "select", {"value": "Kia Rio", "enum_id": CAR * 10 + 1}),
        one(DAYS, "numeric", {"value": "7"}),
        one(SEAT, "checkbox", {"value": True}),
        one(
            EXTRAS,
            "multiselect",
            {"value": "GPS", "enum_id": EXTRAS * 10 + 2},
            {"value": "Кресло", "enum_id": EXTRAS * 10 + 1},
        ),
    ]


async def test_typed_columns_and_values_after_an_upsert(
    db_url: str,
    database: Database,
    make_settings: Factory,
    fake: FakeAmoState,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    loader, checker = clients
    await refresh(make_settings, database, checker)
    plan = sync(db_url, SETTING)
    assert (True, False) == (plan.changed, plan.unchecked)

    engine_sync = create_sync_engine(db_url)
    with engine_sync.connect() as conn:
        named = [c["name"] for c in inspect(conn).get_columns("amocrm_deals_named")]
    engine_sync.dispose()
    columns = described(db_url)
    assert [*named, *ALIASES] == [name for name, _ in columns]
    assert TYPES[database.dialect] == [kind for _, kind in columns[len(named) :]]

    when = datetime(2026, 6, 12, 9, 0, tzinfo=UTC)
    lead = fake.add_lead(custom_fields_values=lead_values(when))
    bare = fake.add_lead()
    await store(database, loader, "leads", [lead["id"], bare["id"]])

    async with database.read() as conn:
        found = (
            await conn.execute(
                text(f"SELECT id, {', '.join(ALIASES)} FROM {VIEW} ORDER BY id")  # noqa: S608
            )
        ).all()
    start, car, days, seat, extras = found[0][1:]
    assert lead["id"] == found[0][0]
    stamp = start if isinstance(start, datetime) else datetime.fromisoformat(str(start))
    assert when == (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC))
    assert ("Kia Rio", 7, True, "GPS; Кресло") == (car, days, bool(seat), extras)
    assert (bare["id"], None, None, None, None, None) == tuple(found[1])


async def test_recreated_when_the_setting_changes_and_dropped_when_unset(
    db_url: str, database: Database, make_settings: Factory, clients: tuple[AmoClient, AmoClient]
) -> None:
    await refresh(make_settings, database, clients[1])
    assert sync(db_url, f"car:{CAR}").changed
    assert not sync(db_url, f"car:{CAR}").changed, "unchanged: the view (and its GRANTs) stays"
    assert sync(db_url, f"car:{CAR},days:{DAYS}").changed
    assert ["car", "days"] == [name for name, _ in described(db_url)][-2:]
    assert sync(db_url, f"auto:{CAR}").changed
    assert "auto" == described(db_url)[-1][0]

    plan = sync(db_url, None)
    assert (None, True) == (plan.sql, plan.changed)
    assert VIEW not in view_names(db_url)
    async with database.read() as conn:
        kept = await conn.execute(select(sync_state.c.key).where(sync_state.c.key == STATE_KEY))
        assert kept.first() is None
    assert not sync(db_url, None).changed


async def test_a_renamed_field_keeps_its_column(
    db_url: str,
    database: Database,
    make_settings: Factory,
    fake: FakeAmoState,
    clients: tuple[AmoClient, AmoClient],
) -> None:
    loader, checker = clients
    await refresh(make_settings, database, checker)
    sync(db_url, f"car:{CAR}")
    lead = fake.add_lead(custom_fields_values=lead_values(datetime.now(UTC))[1:2])
    await store(database, loader, "leads", [lead["id"]])

    renamed = next(f for f in fake.lead_custom_fields if f["id"] == CAR)
    renamed["name"] = "Автомобиль"
    await refresh(make_settings, database, checker)

    assert not sync(db_url, f"car:{CAR}").changed
    async with database.read() as conn:
        car = (await conn.execute(text(f"SELECT car FROM {VIEW}"))).scalar_one()  # noqa: S608
        name = (
            await conn.execute(text(f"SELECT name FROM amocrm_custom_fields WHERE id = {CAR}"))  # noqa: S608
        ).scalar_one()
    assert ("Kia Rio", "Автомобиль") == (car, name)


async def test_text_before_the_first_refresh_then_typed_by_it(
    db_url: str, database: Database, make_settings: Factory, clients: tuple[AmoClient, AmoClient]
) -> None:
    """No field definitions stored yet: ids cannot be checked, every alias is text; the
    reference refresh that stores them gives the view its types (and would check the ids)."""
    plan = sync(db_url, f"rental_start:{START},ghost:123")
    assert plan.unchecked
    text_type = "text" if database.dialect == "postgresql" else "TEXT"
    assert [("rental_start", text_type), ("ghost", text_type)] == described(db_url)[-2:]

    await refresh(make_settings, database, clients[1], deal_field_columns=f"rental_start:{START}")

    assert "rental_start" == described(db_url)[-1][0]
    assert TYPES[database.dialect][0] == described(db_url)[-1][1]


async def test_a_refresh_without_the_setting_leaves_the_view_alone(
    db_url: str, database: Database, make_settings: Factory, clients: tuple[AmoClient, AmoClient]
) -> None:
    """A worker started without AMOSYNC_DEAL_FIELD_COLUMNS must not undo `serve`'s view."""
    sync(db_url, f"car:{CAR}")
    await refresh(make_settings, database, clients[1])
    assert ("car", "TEXT" if database.dialect == "sqlite" else "text") == described(db_url)[-1]


async def test_refresh_with_an_unknown_id_keeps_the_view(
    db_url: str,
    database: Database,
    make_settings: Factory,
    clients: tuple[AmoClient, AmoClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sync(db_url, "ghost:123")
    await refresh(make_settings, database, clients[1], deal_field_columns="ghost:123")
    assert "ghost" == described(db_url)[-1][0]
    assert any("field 123 (“ghost”)" in str(getattr(r, "error", "")) for r in caplog.records)


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("ghost:123", "AMOSYNC_DEAL_FIELD_COLUMNS: field 123 (“ghost”) is not a deal custom field"),
        (f"name:{CAR}", "AMOSYNC_DEAL_FIELD_COLUMNS: alias “name” is already a column of"),
        (
            f"status_name:{CAR}",
            "AMOSYNC_DEAL_FIELD_COLUMNS: alias “status_name” is already a column of",
        ),
        ("phone:600001", "AMOSYNC_DEAL_FIELD_COLUMNS: field 600001 (“phone”) is not a deal"),
    ],
)
async def test_a_wrong_alias_or_id_is_refused_and_the_view_stays(
    db_url: str,
    database: Database,
    make_settings: Factory,
    clients: tuple[AmoClient, AmoClient],
    setting: str,
    problem: str,
) -> None:
    """A contact field's id (600001, the phone) is not a deal field either."""
    await refresh(make_settings, database, clients[1])
    sync(db_url, f"car:{CAR}")
    with pytest.raises(FieldColumnsError) as caught:
        sync(db_url, setting)
    assert str(caught.value).startswith(problem)
    assert "\n" not in str(caught.value)
    assert "car" == described(db_url)[-1][0]


def test_upgrade_makes_the_view_in_the_migration_transaction(db_url: str) -> None:
    plan = migrate.upgrade(db_url, [FieldColumn("car", CAR)])
    assert (True, True) == (plan.changed, plan.unchecked)
    assert VIEW in view_names(db_url)
    assert not migrate.upgrade(db_url, [FieldColumn("car", CAR)]).changed
    migrate.upgrade(db_url)
    assert VIEW not in view_names(db_url)
