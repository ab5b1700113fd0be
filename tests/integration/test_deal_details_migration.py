"""Migration 0010 fills the new tables from what is stored already, on both databases: an
unchanged deal stored again writes nothing (newer-wins), so it would otherwise wait for
its next edit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, select

from amosync.db import migrate
from amosync.db.engine import create_sync_engine
from amosync.db.tables import contacts, deal_companies, deal_tags, deals, field_values
from tests.fresh_pg import fresh_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at 0009, the schema before this migration."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        command.upgrade(migrate.alembic_config(url), "0009_reference")
        yield url
        return
    with fresh_pg_database("amosync_0010") as url:
        command.upgrade(migrate.alembic_config(url), "0009_reference")
        yield url


def test_stored_deals_and_contacts_get_their_rows(old_url: str) -> None:
    now = datetime.now(UTC)
    fields = [
        {"field_id": 5, "field_type": "numeric", "values": [{"value": "4500"}]},
        {"field_id": 6, "field_type": "multiselect", "values": [{"value": "a", "enum_id": 61}]},
    ]
    raw = {"id": 1, "_embedded": {"tags": [{"id": 3, "name": "VIP"}], "companies": [{"id": 9}]}}
    phones = [{"field_id": 2, "field_code": "PHONE", "values": [{"value": "+7 900"}]}]
    engine = create_sync_engine(old_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(deals).values(id=1, custom_fields=fields, raw=raw, synced_at=now))
            conn.execute(
                insert(contacts).values(
                    id=2, phones=[], emails=[], custom_fields=phones, raw={}, synced_at=now
                )
            )
        migrate.upgrade(old_url)
        with engine.connect() as conn:
            fv = field_values.c
            found = conn.execute(
                select(
                    fv.entity_type, fv.entity_id, fv.field_id, fv.value_text, fv.value_number
                ).order_by(fv.entity_type, fv.field_id)
            ).all()
            assert [
                ("contacts", 2, 2, "+7 900", None),
                ("leads", 1, 5, "4500", 4500.0),
                ("leads", 1, 6, "a", None),
            ] == [tuple(r) for r in found]
            assert [(1, 3, "VIP")] == [tuple(r) for r in conn.execute(select(deal_tags))]
            assert [(1, 9)] == [tuple(r) for r in conn.execute(select(deal_companies))]
    finally:
        engine.dispose()
