"""Alembic driven from code: `amosync migrate`, start-up checks and tests use these."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from amosync.db.engine import create_sync_engine

# Key of the PostgreSQL advisory lock that serialises `upgrade` ("amosync" in ASCII).
_MIGRATE_LOCK = 0x616D6F73796E63


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


def upgrade(url: str) -> None:
    """Apply every pending migration (idempotent)."""
    engine = create_sync_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Several processes may migrate at once (ExecStartPre on every host, compose
                # --scale): the others wait here, then find nothing left to do. SQLite's
                # BEGIN IMMEDIATE serialises them already.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
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
