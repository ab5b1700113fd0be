"""deals: rentprog_id as unbounded text

Revision ID: 0004_unbounded_text
Revises: 0003
Create Date: 2026-12-07 02:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_unbounded_text"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The RentProg ID is text typed by amoCRM users, with no length limit there: as
    # varchar(255) a 300-character value made PostgreSQL refuse the lead's whole batch. Every
    # other amoCRM string is already `text`. On PostgreSQL varchar → text rewrites nothing;
    # on SQLite (which never enforced the length) the table is copied once.
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.alter_column(
            "rentprog_id",
            existing_type=sa.String(length=255),
            type_=sa.Text(),
            existing_nullable=True,
        )


def downgrade() -> None:
    # Values longer than 255 characters are cut, as the old column could not hold them.
    op.execute(
        sa.text(
            "UPDATE amocrm_deals SET rentprog_id = substr(rentprog_id, 1, 255) "
            "WHERE length(rentprog_id) > 255"
        )
    )
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.alter_column(
            "rentprog_id",
            existing_type=sa.Text(),
            type_=sa.String(length=255),
            existing_nullable=True,
        )
