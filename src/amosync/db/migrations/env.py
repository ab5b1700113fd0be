"""Alembic environment: runs on a connection handed in by `amosync.db.migrate`, or opens one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from amosync.db.engine import create_sync_engine
from amosync.db.tables import metadata


def _run(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite needs table rebuilds to ALTER
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    conn = context.config.attributes.get("connection")
    if conn is not None:
        _run(conn)
        return
    engine = create_sync_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as new_conn:
            _run(new_conn)
    finally:
        engine.dispose()


run_migrations_online()
