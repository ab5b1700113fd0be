"""deal details: custom-field values as rows, a deal's tags and companies

Revision ID: 0010_deal_details
Revises: 0009_reference
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import amosync.db.types

revision = "0010_deal_details"
down_revision = "0009_reference"
branch_labels = None
depends_on = None

# New tables only: no existing table is rebuilt, so the amocrm_deals_named view (0009) stays.
# Stored deals and contacts get their rows when they are next stored (a webhook, catch-up or
# `amosync backfill`), not here: filling them means parsing every stored `raw` with the
# upsert's rules, which live in the application and may change after this migration.


def upgrade() -> None:
    op.create_table(
        "amocrm_field_values",
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("field_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("field_code", sa.Text(), nullable=True),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("value_datetime", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enum_id", sa.BigInteger(), nullable=True),
        sa.Column("enum_code", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint(
            "entity_type", "entity_id", "field_id", "position", name=op.f("pk_amocrm_field_values")
        ),
    )
    op.create_index(
        op.f("ix_amocrm_field_values_field_id_value_text"),
        "amocrm_field_values",
        ["field_id", "value_text"],
    )
    for column in ("value_number", "value_datetime", "enum_id"):
        op.create_index(
            op.f(f"ix_amocrm_field_values_field_id_{column}"),
            "amocrm_field_values",
            ["field_id", column],
            # Most values are text: an index of NULLs would cost every write for nothing.
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    op.create_table(
        "amocrm_deal_tags",
        sa.Column("deal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tag_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("deal_id", "tag_id", name=op.f("pk_amocrm_deal_tags")),
    )
    op.create_index(op.f("ix_amocrm_deal_tags_name"), "amocrm_deal_tags", ["name"])
    op.create_table(
        "amocrm_deal_companies",
        sa.Column("deal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("company_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("deal_id", "company_id", name=op.f("pk_amocrm_deal_companies")),
    )
    op.create_index(
        op.f("ix_amocrm_deal_companies_company_id"), "amocrm_deal_companies", ["company_id"]
    )


def downgrade() -> None:
    op.drop_table("amocrm_deal_companies")
    op.drop_table("amocrm_deal_tags")
    op.drop_table("amocrm_field_values")
