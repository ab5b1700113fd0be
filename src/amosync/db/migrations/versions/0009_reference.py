"""reference data: pipelines, stages, users, custom-field definitions, loss reasons; the
named view of deals; deal columns loss_reason_id/created_by/updated_by; contacts' phone

Revision ID: 0009_reference
Revises: 0008_processed_at_index
Create Date: 2026-12-07 03:40:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import amosync.db.types

revision = "0009_reference"
down_revision = "0008_processed_at_index"
branch_labels = None
depends_on = None

VIEW = "amocrm_deals_named"

# One SQL for both databases: nothing here is dialect-specific. The first phone of the main
# contact comes from the plain `phone` column added below, because reading it from the JSON
# `phones` needs json_extract() on SQLite and ->> on PostgreSQL. The main contact comes from
# a grouped subquery, so a deal with two links flagged main still gives one row.
# A later migration that rebuilds amocrm_deals, amocrm_contacts or amocrm_deal_contacts with
# batch_alter_table on SQLite must drop this view first and create it again after: SQLite
# refuses to rename the rebuilt table while a view names it. Every deal column is listed
# (not d.*): PostgreSQL would freeze d.* at creation anyway, and a test compares the lists.
VIEW_SQL = """
CREATE VIEW amocrm_deals_named AS
SELECT
    d.id, d.name, d.price, d.status_id, d.pipeline_id, d.responsible_user_id,
    d.created_at, d.updated_at, d.closed_at, d.is_deleted, d.rentprog_id,
    d.custom_fields, d.raw, d.synced_at,
    d.loss_reason_id, d.created_by, d.updated_by,
    p.name AS pipeline_name,
    s.name AS status_name,
    CASE d.status_id WHEN 142 THEN 'won' WHEN 143 THEN 'lost' ELSE 'open' END AS status_kind,
    u.name AS responsible_user_name,
    lr.name AS loss_reason_name,
    mc.contact_id AS main_contact_id,
    c.name AS main_contact_name,
    c.phone AS main_contact_phone
FROM amocrm_deals d
LEFT JOIN amocrm_pipelines p ON p.id = d.pipeline_id
LEFT JOIN amocrm_statuses s ON s.pipeline_id = d.pipeline_id AND s.id = d.status_id
LEFT JOIN amocrm_users u ON u.id = d.responsible_user_id
LEFT JOIN amocrm_loss_reasons lr ON lr.id = d.loss_reason_id
LEFT JOIN (
    SELECT deal_id, MIN(contact_id) AS contact_id
    FROM amocrm_deal_contacts
    WHERE is_main
    GROUP BY deal_id
) mc ON mc.deal_id = d.id
LEFT JOIN amocrm_contacts c ON c.id = mc.contact_id
"""

_BATCH = 1000
_INT64 = (-(2**63), 2**63 - 1)


def _common() -> list[Any]:
    return [
        sa.Column("is_deleted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("raw", amosync.db.types.Json, nullable=False),
        sa.Column("synced_at", amosync.db.types.UTCDateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    for table in ("amocrm_contacts", "amocrm_companies"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("phone", sa.Text(), nullable=True))
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("loss_reason_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("updated_by", sa.BigInteger(), nullable=True))

    op.create_table(
        "amocrm_pipelines",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("sort", sa.BigInteger(), nullable=True),
        sa.Column("is_main", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("is_archive", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_common(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_pipelines")),
    )
    op.create_table(
        "amocrm_statuses",
        sa.Column("pipeline_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("sort", sa.BigInteger(), nullable=True),
        sa.Column("color", sa.Text(), nullable=True),
        sa.Column("type", sa.BigInteger(), nullable=True),
        *_common(),
        sa.PrimaryKeyConstraint("pipeline_id", "id", name=op.f("pk_amocrm_statuses")),
    )
    op.create_table(
        "amocrm_users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=True),
        *_common(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_users")),
    )
    op.create_table(
        "amocrm_custom_fields",
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("type", sa.Text(), nullable=True),
        sa.Column("sort", sa.BigInteger(), nullable=True),
        sa.Column("enums", amosync.db.types.Json, nullable=True),
        *_common(),
        sa.PrimaryKeyConstraint("entity_type", "id", name=op.f("pk_amocrm_custom_fields")),
    )
    op.create_table(
        "amocrm_loss_reasons",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("sort", sa.BigInteger(), nullable=True),
        *_common(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_amocrm_loss_reasons")),
    )
    _backfill_deals()
    _backfill_phones("amocrm_contacts")
    _backfill_phones("amocrm_companies")
    op.execute(VIEW_SQL)


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {VIEW}")
    for table in (
        "amocrm_loss_reasons",
        "amocrm_custom_fields",
        "amocrm_users",
        "amocrm_statuses",
        "amocrm_pipelines",
    ):
        op.drop_table(table)
    with op.batch_alter_table("amocrm_deals", schema=None) as batch_op:
        batch_op.drop_column("updated_by")
        batch_op.drop_column("created_by")
        batch_op.drop_column("loss_reason_id")
    for table in ("amocrm_contacts", "amocrm_companies"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("phone")


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]:
        return value
    return None


def _batches(table: sa.TableClause, column: str) -> Any:
    """(id, value) rows of `table` in id order, `_BATCH` at a time (keyset: no OFFSET)."""
    bind = op.get_bind()
    last: int | None = None
    while True:
        query = sa.select(table.c.id, table.c[column]).order_by(table.c.id).limit(_BATCH)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = bind.execute(query).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _backfill_deals() -> None:
    # Stored rows keep the whole API object in `raw`: the new columns come from it, read in
    # Python (the same rule as core/mapping.py) rather than with per-dialect JSON SQL.
    deals = sa.table(
        "amocrm_deals",
        sa.column("id", sa.BigInteger()),
        sa.column("raw", sa.JSON()),
        sa.column("loss_reason_id", sa.BigInteger()),
        sa.column("created_by", sa.BigInteger()),
        sa.column("updated_by", sa.BigInteger()),
    )
    stmt = (
        sa.update(deals)
        .where(deals.c.id == sa.bindparam("b_id"))
        .values(
            loss_reason_id=sa.bindparam("b_lr"),
            created_by=sa.bindparam("b_cb"),
            updated_by=sa.bindparam("b_ub"),
        )
    )
    for rows in _batches(deals, "raw"):
        params = [
            {
                "b_id": deal_id,
                "b_lr": _int(raw.get("loss_reason_id")),
                "b_cb": _int(raw.get("created_by")),
                "b_ub": _int(raw.get("updated_by")),
            }
            for deal_id, raw in rows
            if isinstance(raw, dict)
        ]
        if params:
            op.get_bind().execute(stmt, params)


def _backfill_phones(name: str) -> None:
    table = sa.table(
        name,
        sa.column("id", sa.BigInteger()),
        sa.column("phones", sa.JSON()),
        sa.column("phone", sa.Text()),
    )
    stmt = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(phone=sa.bindparam("b_phone"))
    )
    for rows in _batches(table, "phones"):
        params = [
            {"b_id": row_id, "b_phone": phones[0]}
            for row_id, phones in rows
            if isinstance(phones, list) and phones and isinstance(phones[0], str)
        ]
        if params:
            op.get_bind().execute(stmt, params)
