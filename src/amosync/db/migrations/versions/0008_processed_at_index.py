"""webhook events: partial index on processed_at for the status page's activity chart

Revision ID: 0008_processed_at_index
Revises: 0007_semantics
Create Date: 2026-12-07 02:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_processed_at_index"
down_revision = "0007_semantics"
branch_labels = None
depends_on = None

# Only finished events have a processed_at: the webhook's INSERT (processed_at NULL) adds no
# index entry, so the ACK path pays nothing for it; settling an event adds one.
_FINISHED = sa.text("processed_at IS NOT NULL")


def upgrade() -> None:
    # The chart counts events processed per minute over the last 3 hours: a range of this
    # index (status rides along, so the range is all it reads), however many events are kept.
    with op.batch_alter_table("amocrm_webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_webhook_events_processed_at_status"),
            ["processed_at", "status"],
            unique=False,
            sqlite_where=_FINISHED,
            postgresql_where=_FINISHED,
        )


def downgrade() -> None:
    with op.batch_alter_table("amocrm_webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_webhook_events_processed_at_status"))
