"""Stage history (amocrm_deal_stage_history) from its three sources, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import insert, select

from amosync.db import migrate
from amosync.db.engine import create_sync_engine
from amosync.db.tables import deal_stage_history, deals


def test_upgrade_gives_stored_deals_a_first_seen_row(db_url: str) -> None:
    """Deals stored before the table existed start their history at the stage we hold, at
    their updated_at (synced_at when amoCRM gave none), like a deal stored for the first time."""
    command.downgrade(migrate.alembic_config(db_url), "-1")
    engine = create_sync_engine(db_url)
    updated = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    synced = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for deal_id, updated_at in ((1, updated), (2, None)):
                conn.execute(
                    insert(deals).values(
                        id=deal_id,
                        pipeline_id=7000001,
                        status_id=47000001,
                        updated_at=updated_at,
                        custom_fields=[],
                        raw={},
                        synced_at=synced,
                    )
                )
        migrate.upgrade(db_url)
        with engine.connect() as conn:
            h = deal_stage_history.c
            got = conn.execute(
                select(
                    h.deal_id,
                    h.pipeline_id,
                    h.status_id,
                    h.from_status_id,
                    h.changed_at,
                    h.source,
                    h.amocrm_event_id,
                ).order_by(h.deal_id)
            ).all()
    finally:
        engine.dispose()

    assert [
        (1, 7000001, 47000001, None, updated, "first_seen", None),
        (2, 7000001, 47000001, None, synced, "first_seen", None),
    ] == [tuple(r) for r in got]
