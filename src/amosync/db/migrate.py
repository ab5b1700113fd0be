"""Alembic driven from code: `amosync migrate`, start-up checks and tests use these."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from amosync.core.field_columns import FieldColumn
from amosync.db.engine import create_sync_engine
from amosync.db.schema_lock import lock_schema
from amosync.db.wide_view import Plan, drop_wide_view, sync_wide_view


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("amosync.db") / "migrations"))
    # Alembic reads this through configparser, where % is special.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def head_revision() -> str | None:
    """The newest migration shipped in this package."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def upgrade(url: str, field_columns: Sequence[FieldColumn] = ()) -> Plan:
    """Apply every pending migration (idempotent), then make the view of deal field aliases
    match `field_columns` (db/wide_view.py), in one transaction: a bad alias rolls the
    migration back too, and the error names the setting."""
    engine = create_sync_engine(url)
    try:
        with engine.begin() as conn:
            lock_schema(conn)
            config = alembic_config(url)
            if current_revision(conn) != head_revision():
                # The alias view sits on the named view: a migration that drops or rebuilds
                # what lies under it must not find it there (PostgreSQL refuses to drop a
                # view another view uses; SQLite to rename a table a view names).
                drop_wide_view(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            return sync_wide_view(conn, field_columns)
    finally:
        engine.dispose()


def sync_view(url: str, field_columns: Sequence[FieldColumn]) -> Plan:
    """Only the alias view, for a database migrated elsewhere (PostgreSQL `serve`)."""
    engine = create_sync_engine(url)
    try:
        with engine.begin() as conn:
            return sync_wide_view(conn, field_columns)
    finally:
        engine.dispose()


def database_revision(url: str) -> str | None:
    """The revision of the database at `url`, opening and closing a connection for it."""
    engine = create_sync_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()
