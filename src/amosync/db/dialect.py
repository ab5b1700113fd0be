"""The INSERT … ON CONFLICT construct of the connection's database.

SQLite and PostgreSQL both offer `on_conflict_do_update`/`do_nothing`, under their own
`insert`. Every "insert or update" in amosync (entity upserts, state rows, leases,
heartbeats) starts here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def upsert_insert(conn: AsyncConnection, table: Table) -> Any:
    """`postgresql.insert` or `sqlite.insert` for this connection's database."""
    return dialect_insert(conn.dialect.name, table)


def dialect_insert(dialect_name: str, table: Table) -> Any:
    """The same, by dialect name (for statements built once and cached)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
