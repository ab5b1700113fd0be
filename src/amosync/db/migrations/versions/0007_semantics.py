"""deletion stubs: drop the rows older versions made for deletions of unknown entities

Revision ID: 0007_semantics
Revises: 0006_event_text_columns
Create Date: 2026-12-07 03:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0007_semantics"
down_revision = "0006_event_text_columns"
branch_labels = None
depends_on = None

_TABLES = ("amocrm_deals", "amocrm_contacts", "amocrm_companies")


def upgrade() -> None:
    # Older versions flagged every id missing from an answer, inserting a row with nothing
    # but the id for one never stored: it was counted and listed as a deal. A deletion of an
    # unknown entity now leaves no row (the inbox keeps the event), so those stubs go. Only
    # stubs have no updated_at, name and created_at at all: every real amoCRM object,
    # trash stubs included, carries updated_at.
    for table in _TABLES:
        op.execute(
            f"DELETE FROM {table} WHERE is_deleted AND updated_at IS NULL "  # noqa: S608
            "AND name IS NULL AND created_at IS NULL"
        )


def downgrade() -> None:
    # The stubs carried nothing but their id; nothing to put back.
    pass
