"""amosync_verified: when each stored entity was last compared with amoCRM

Revision ID: 0005_verify
Revises: 0004_unbounded_text
Create Date: 2026-12-07 02:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import amosync.db.types

revision = "0005_verify"
down_revision = "0004_unbounded_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amosync_verified",
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("verified_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity", "id", name=op.f("pk_amosync_verified")),
    )
    with op.batch_alter_table("amosync_verified", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amosync_verified_entity_verified_at"),
            ["entity", "verified_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("amosync_verified", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amosync_verified_entity_verified_at"))
    op.drop_table("amosync_verified")
