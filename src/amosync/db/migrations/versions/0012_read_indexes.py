"""deals: indexes for reading by pipeline, stage and manager

Revision ID: 0012_read_indexes
Revises: 0011_stage_history
Create Date: 2026-12-07 06:20:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012_read_indexes"
down_revision = "0011_stage_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Deals per stage (/api/pipelines, the status page's summary, the SQL recipes): the
    # index alone answers the GROUP BY, is_deleted riding along, instead of a scan of every
    # deal row with its JSON. It also serves `/api/deals?pipeline_id=&status_id=`.
    # Plain CREATE INDEX, not batch mode: nothing here may rebuild amocrm_deals on SQLite,
    # which the view amocrm_deals_named (0009) would refuse.
    op.create_index(
        "ix_amocrm_deals_pipeline_id_status_id_is_deleted",
        "amocrm_deals",
        ["pipeline_id", "status_id", "is_deleted"],
    )
    # Deals per manager and `/api/deals?responsible_user_id=`.
    op.create_index("ix_amocrm_deals_responsible_user_id", "amocrm_deals", ["responsible_user_id"])


def downgrade() -> None:
    op.drop_index("ix_amocrm_deals_responsible_user_id", table_name="amocrm_deals")
    op.drop_index("ix_amocrm_deals_pipeline_id_status_id_is_deleted", table_name="amocrm_deals")
