"""webhook events: entity, action and request_id as TEXT on PostgreSQL

Revision ID: 0006_event_text_columns
Revises: 0005_verify
Create Date: 2026-12-07 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_event_text_columns"
down_revision = "0005_verify"
branch_labels = None
depends_on = None

# The sender decides these lengths; PostgreSQL refused longer values (the webhook got 503).
_COLUMNS = {"entity": 32, "action": 32, "request_id": 64}


def upgrade() -> None:
    # SQLite does not enforce VARCHAR lengths: nothing to change there (db/types.outside_text).
    # On PostgreSQL VARCHAR → TEXT is binary-coercible: no table rewrite, a brief lock.
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, length in _COLUMNS.items():
        op.alter_column(
            "amocrm_webhook_events",
            column,
            type_=sa.Text(),
            existing_type=sa.String(length),
            existing_nullable=column == "request_id",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, length in _COLUMNS.items():
        op.alter_column(
            "amocrm_webhook_events",
            column,
            type_=sa.String(length),
            existing_type=sa.Text(),
            existing_nullable=column == "request_id",
            postgresql_using=f"left({column}, {length})",
        )
