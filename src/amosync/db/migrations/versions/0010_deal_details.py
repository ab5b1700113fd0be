"""deal details: custom-field values as rows, a deal's tags and companies

Revision ID: 0010_deal_details
Revises: 0009_reference
Create Date: 2026-12-07 06:00:00.000000
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import amosync.db.types
from amosync.core.field_values import field_value_rows
from amosync.core.mapping import lead_company_ids, lead_tags

revision = "0010_deal_details"
down_revision = "0009_reference"
branch_labels = None
depends_on = None

# New tables only: no existing table is rebuilt, so the amocrm_deals_named view (0009) stays.
# The rows of what is stored already are filled here, with the upsert's own rules
# (core/field_values.py, core/mapping.py): storing an unchanged copy again writes nothing
# (newer-wins refuses it), so without this a deal would get its rows only when next edited.


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

    _backfill()


def downgrade() -> None:
    op.drop_table("amocrm_deal_companies")
    op.drop_table("amocrm_deal_tags")
    op.drop_table("amocrm_field_values")


_BATCH = 1000
_ENTITIES = (
    ("leads", "amocrm_deals"),
    ("contacts", "amocrm_contacts"),
    ("companies", "amocrm_companies"),
)


def _rows_of(name: str) -> Iterator[Sequence[Any]]:
    """(id, custom_fields, raw) of a table in id order, `_BATCH` at a time (keyset)."""
    table = sa.table(
        name,
        sa.column("id", sa.BigInteger()),
        sa.column("custom_fields", sa.JSON()),
        sa.column("raw", sa.JSON()),
    )
    bind = op.get_bind()
    last: int | None = None
    while True:
        query = sa.select(table.c.id, table.c.custom_fields, table.c.raw).order_by(table.c.id)
        if last is not None:
            query = query.where(table.c.id > last)
        rows = bind.execute(query.limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _backfill() -> None:
    bind = op.get_bind()
    values = sa.table(
        "amocrm_field_values",
        *(sa.column(n) for n in ("entity_type", "entity_id", "field_id", "position")),
        *(sa.column(n) for n in ("field_code", "value_text", "value_number", "enum_id")),
        sa.column("value_datetime", amosync.db.types.UTCDateTime()),
        sa.column("enum_code"),
    )
    tags = sa.table(
        "amocrm_deal_tags", sa.column("deal_id"), sa.column("tag_id"), sa.column("name")
    )
    companies = sa.table("amocrm_deal_companies", sa.column("deal_id"), sa.column("company_id"))
    definitions = sa.table(
        "amocrm_custom_fields", sa.column("entity_type"), sa.column("id"), sa.column("type")
    )
    for entity, name in _ENTITIES:
        types = dict(
            bind.execute(
                sa.select(definitions.c.id, definitions.c.type).where(
                    definitions.c.entity_type == entity
                )
            ).all()
        )
        for rows in _rows_of(name):
            new = [
                row
                for entity_id, fields, _raw in rows
                for row in field_value_rows(entity, entity_id, fields, types)
            ]
            if new:
                bind.execute(sa.insert(values), new)
            if entity != "leads":
                continue
            deal_tags = [
                {"deal_id": deal_id, "tag_id": tag_id, "name": tag}
                for deal_id, _fields, raw in rows
                if isinstance(raw, dict)
                for tag_id, tag in lead_tags(raw).items()
            ]
            if deal_tags:
                bind.execute(sa.insert(tags), deal_tags)
            links = [
                {"deal_id": deal_id, "company_id": company_id}
                for deal_id, _fields, raw in rows
                if isinstance(raw, dict)
                for company_id in lead_company_ids(raw)
            ]
            if links:
                bind.execute(sa.insert(companies), links)
