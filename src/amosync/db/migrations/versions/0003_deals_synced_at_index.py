"""deals: index on synced_at for the read API's change feed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 20:05:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `GET /api/deals?updated_since=…` pages by (synced_at, id): synced_at moves on every
    # stored change, deletion flags included, which amoCRM's own updated_at does not.
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_amocrm_deals_synced_at"), ["synced_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_deals_synced_at"))
