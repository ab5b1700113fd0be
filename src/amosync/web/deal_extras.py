"""What the read API adds to a page of deals beyond its own row: custom fields by name,
tags and companies, each with one query for the whole page.

Fields come from `amocrm_field_values` (typed by the upsert, core/field_values.py) named
by `amocrm_custom_fields`. A field amosync has no definition for yet is keyed by its code,
else by its id, so it is never dropped; two fields with one name (amoCRM allows it) are
told apart by their ids. A field whose type holds several values (multiselect, multitext,
…) gives `values`, every other `value`: the shape follows the type, not the count, so a
reader need not guess.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.field_values import CHECKBOX, DATE_TYPES, NUMBER_TYPES
from amosync.db.tables import companies, custom_fields, deal_companies, deal_tags, field_values

MULTI_TYPES = frozenset({"multiselect", "multitext", "chained_list", "category", "items"})


def _value(row: Any, field_type: str | None) -> Any:
    if field_type in DATE_TYPES and row.value_datetime is not None:
        value_datetime: datetime = row.value_datetime
        return value_datetime.isoformat()
    if field_type == CHECKBOX and row.value_number is not None:
        return bool(row.value_number)
    if field_type in NUMBER_TYPES and row.value_number is not None:
        number: float = row.value_number
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return row.value_text


async def fields_by_name(conn: AsyncConnection, deal_ids: list[int]) -> dict[int, dict[str, Any]]:
    query = (
        select(
            field_values,
            custom_fields.c.name.label("field_name"),
            custom_fields.c.type.label("field_type"),
        )
        .select_from(
            field_values.outerjoin(
                custom_fields,
                and_(
                    custom_fields.c.entity_type == field_values.c.entity_type,
                    custom_fields.c.id == field_values.c.field_id,
                ),
            )
        )
        .where(field_values.c.entity_type == "leads", field_values.c.entity_id.in_(deal_ids))
        .order_by(
            field_values.c.entity_id,
            custom_fields.c.sort,
            field_values.c.field_id,
            field_values.c.position,
        )
    )
    grouped: dict[int, dict[int, list[Any]]] = defaultdict(dict)
    for row in (await conn.execute(query)).all():
        grouped[row.entity_id].setdefault(row.field_id, []).append(row)
    result: dict[int, dict[str, Any]] = {}
    for deal_id, by_field in grouped.items():
        named: dict[str, Any] = {}
        for field_id, rows in by_field.items():
            first = rows[0]
            kind = first.field_type
            key = first.field_name or first.field_code or str(field_id)
            if key in named:
                key = f"{key} ({field_id})"
            entry: dict[str, Any] = {"id": field_id, "code": first.field_code, "type": kind}
            if kind in MULTI_TYPES or (kind is None and len(rows) > 1):
                entry["values"] = [_value(r, kind) for r in rows]
            else:
                entry["value"] = _value(first, kind)
            named[key] = entry
        result[deal_id] = named
    return result


async def tags_of(conn: AsyncConnection, deal_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    query = (
        select(deal_tags)
        .where(deal_tags.c.deal_id.in_(deal_ids))
        .order_by(deal_tags.c.deal_id, deal_tags.c.name, deal_tags.c.tag_id)
    )
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (await conn.execute(query)).all():
        found[row.deal_id].append({"id": row.tag_id, "name": row.name})
    return found


async def companies_of(
    conn: AsyncConnection, deal_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    """A deal's companies; one linked but not fetched yet has `stored: false` and no name."""
    query = (
        select(
            deal_companies.c.deal_id,
            deal_companies.c.company_id,
            companies.c.id.label("stored_id"),
            companies.c.name,
            companies.c.phones,
            companies.c.emails,
            companies.c.is_deleted,
        )
        .select_from(
            deal_companies.outerjoin(companies, companies.c.id == deal_companies.c.company_id)
        )
        .where(deal_companies.c.deal_id.in_(deal_ids))
        .order_by(deal_companies.c.deal_id, deal_companies.c.company_id)
    )
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (await conn.execute(query)).all():
        entry: dict[str, Any] = {"id": row.company_id, "stored": row.stored_id is not None}
        if row.stored_id is not None:
            entry.update(
                name=row.name,
                phones=row.phones,
                emails=row.emails,
                is_deleted=bool(row.is_deleted),
            )
        found[row.deal_id].append(entry)
    return found


async def attach_extras(conn: AsyncConnection, deals_json: list[dict[str, Any]]) -> None:
    """Add `fields`, `tags` and `companies` to each deal of the page, in place."""
    ids = [d["id"] for d in deals_json]
    if not ids:
        return
    fields = await fields_by_name(conn, ids)
    tags = await tags_of(conn, ids)
    linked = await companies_of(conn, ids)
    for deal in deals_json:
        deal["fields"] = fields.get(deal["id"], {})
        deal["tags"] = tags.get(deal["id"], [])
        deal["companies"] = linked.get(deal["id"], [])
