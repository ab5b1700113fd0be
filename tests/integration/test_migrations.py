"""The shipped migrations build exactly the schema `db/tables.py` declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from amosync.db import migrate
from amosync.db.engine import create_sync_engine
from amosync.db.tables import metadata


def test_migrated_schema_matches_tables(db_url: str) -> None:
    """After `upgrade head` alembic finds no difference between the engine and the tables."""
    engine = create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
            current = migrate.current_revision(conn)
    finally:
        engine.dispose()

    assert [] == diff
    assert migrate.head_revision() == current


def test_upgrade_is_idempotent(db_url: str) -> None:
    """Running migrations on an up-to-date engine changes nothing and does not fail."""
    migrate.upgrade(db_url)
    migrate.upgrade(db_url)

    engine = create_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            assert migrate.head_revision() == migrate.current_revision(conn)
    finally:
        engine.dispose()
