"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 17:17:36.463400
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import amosync.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "amocrm_api_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_api_requests")),
    )
    with op.batch_alter_table("amocrm_api_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_amocrm_api_requests_at"), ["at"], unique=False)

    op.create_table(
        "amocrm_companies",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("responsible_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "phones",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "emails",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("synced_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_companies")),
    )
    with op.batch_alter_table("amocrm_companies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_companies_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "amocrm_contacts",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("responsible_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "phones",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "emails",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("synced_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_contacts")),
    )
    with op.batch_alter_table("amocrm_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_contacts_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "amocrm_deal_contacts",
        sa.Column("deal_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("contact_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("is_main", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("deal_id", "contact_id", name=op.f("pk_amocrm_deal_contacts")),
    )
    with op.batch_alter_table("amocrm_deal_contacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_deal_contacts_contact_id"), ["contact_id"], unique=False
        )

    op.create_table(
        "amocrm_deals",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("price", sa.BigInteger(), nullable=True),
        sa.Column("status_id", sa.BigInteger(), nullable=True),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=True),
        sa.Column("responsible_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("rentprog_id", sa.String(length=255), nullable=True),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("synced_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_deals")),
    )
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_deals_rentprog_id"), ["rentprog_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_amocrm_deals_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "amocrm_webhook_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=True),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("entity_updated_at", sa.BigInteger(), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", amosync.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("available_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_webhook_events")),
    )
    with op.batch_alter_table("amocrm_webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_amocrm_webhook_events_entity_entity_id"),
            ["entity", "entity_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_amocrm_webhook_events_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_amocrm_webhook_events_status_available_at_id"),
            ["status", "available_at", "id"],
            unique=False,
        )

    op.create_table(
        "amosync_workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("state_detail", sa.Text(), nullable=True),
        sa.Column("processed", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amosync_workers")),
    )


def downgrade() -> None:
    op.drop_table("amosync_workers")
    with op.batch_alter_table("amocrm_webhook_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_webhook_events_status_available_at_id"))
        batch_op.drop_index(batch_op.f("ix_amocrm_webhook_events_received_at"))
        batch_op.drop_index(batch_op.f("ix_amocrm_webhook_events_entity_entity_id"))

    op.drop_table("amocrm_webhook_events")
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_deals_updated_at"))
        batch_op.drop_index(batch_op.f("ix_amocrm_deals_rentprog_id"))

    op.drop_table("amocrm_deals")
    with op.batch_alter_table("amocrm_deal_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_deal_contacts_contact_id"))

    op.drop_table("amocrm_deal_contacts")
    with op.batch_alter_table("amocrm_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_contacts_updated_at"))

    op.drop_table("amocrm_contacts")
    with op.batch_alter_table("amocrm_companies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_companies_updated_at"))

    op.drop_table("amocrm_companies")
    with op.batch_alter_table("amocrm_api_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_amocrm_api_requests_at"))

    op.drop_table("amocrm_api_requests")
