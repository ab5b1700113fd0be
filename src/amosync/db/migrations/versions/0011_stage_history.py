"""amocrm_deal_stage_history: the stages each deal went through (observed, first_seen,
events_api), with a first_seen row for every deal already stored

Revision ID: 0011_stage_history
Revises: 0009_reference
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import amosync.db.types

revision = "0011_stage_history"
# Written beside 0010_deal_details; the coordinator re-chains this to "0010_deal_details".
down_revision = "0009_reference"
branch_labels = None
depends_on = None

TABLE = "amocrm_deal_stage_history"

# Deals stored before this revision get the row the upsert gives a deal it stores for the
# first time (upsert/stage_history.py): their stage as of the copy we hold, at its
# updated_at (synced_at when amoCRM gave none); a row without a stage (a deletion stub of
# older versions) starts none, as in the upsert. One INSERT ... SELECT, the same SQL on both
# databases, so a million-deal upgrade is one statement and no Python loop.
SEED_SQL = """
INSERT INTO amocrm_deal_stage_history (deal_id, pipeline_id, status_id, changed_at, source)
SELECT id, pipeline_id, status_id, COALESCE(updated_at, synced_at), 'first_seen'
FROM amocrm_deals
WHERE status_id IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("deal_id", sa.BigInteger(), nullable=False),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=True),
        sa.Column("status_id", sa.BigInteger(), nullable=True),
        sa.Column("from_pipeline_id", sa.BigInteger(), nullable=True),
        sa.Column("from_status_id", sa.BigInteger(), nullable=True),
        sa.Column("changed_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column(
            "amocrm_event_id",
            sa.String(length=64).with_variant(sa.Text(), "postgresql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_deal_stage_history")),
    )
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_deal_stage_history_amocrm_event_id"),
            ["amocrm_event_id"],
            unique=True,
            sqlite_where=sa.text("amocrm_event_id IS NOT NULL"),
            postgresql_where=sa.text("amocrm_event_id IS NOT NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_amocrm_deal_stage_history_deal_id_changed_at"),
            ["deal_id", "changed_at"],
            unique=False,
        )
    op.execute(SEED_SQL)


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_deal_stage_history_deal_id_changed_at"))
        batch_op.drop_index(batch_op.f("ix_amocrm_deal_stage_history_amocrm_event_id"))
    op.drop_table(TABLE)
