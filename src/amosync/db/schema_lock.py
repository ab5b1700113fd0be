"""One process at a time changes the schema: migrations and the views made by code."""

from __future__ import annotations

from sqlalchemy import Connection, text

# Key of the PostgreSQL advisory lock ("amosync" in ASCII).
_SCHEMA_LOCK = 0x616D6F73796E63


def lock_schema(conn: Connection) -> None:
    """Hold the schema lock until `conn`'s transaction ends (re-entrant in one session).

    Several processes may start at once (ExecStartPre on every host, compose --scale): the
    others wait here, then find nothing left to do. SQLite's BEGIN IMMEDIATE serialises them
    already."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
