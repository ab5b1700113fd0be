"""oauth tokens and shared state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 17:36:31.762576
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import amosync.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amocrm_oauth_tokens",
        sa.Column("account", sa.String(length=255), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("expires_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("refresh_expires_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_amocrm_oauth_tokens")),
    )
    op.create_table(
        "amosync_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_amosync_state")),
    )


def downgrade() -> None:
    op.drop_table("amosync_state")
    op.drop_table("amocrm_oauth_tokens")
