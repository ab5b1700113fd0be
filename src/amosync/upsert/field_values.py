"""Statements on `amocrm_field_values`: the custom-field values of stored entities as rows.

Called by the entity upserts with the ids the newer-wins rule actually wrote, in the same
transaction: the rows always describe the stored copy, never one refused as older. An
entity's rows are replaced as a whole (amoCRM sends every value of the entity each time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.field_values import field_value_rows
from amosync.core.mapping import int_id
from amosync.db.tables import custom_fields, field_values
from amosync.upsert.entity import power_of_two_chunks


class _WithFields(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def custom_fields(self) -> list[dict[str, Any]]: ...


async def replace_field_values(
    conn: AsyncConnection, entity_type: str, records: Sequence[_WithFields], ids: Iterable[int]
) -> None:
    """Make the stored values of the entities `ids` (of `records`) exactly their fields'."""
    written = set(ids)
    # One copy per id (the last), as the upsert keeps: a duplicate would break the key.
    wanted = list({r.id: r for r in records if r.id in written}.values())
    if not wanted:
        return
    types = await _known_types(conn, entity_type, wanted)
    table = field_values.c
    for chunk in power_of_two_chunks(sorted(r.id for r in wanted)):
        await conn.execute(
            delete(field_values).where(table.entity_type == entity_type, table.entity_id.in_(chunk))
        )
    rows = [
        row
        for record in wanted
        for row in field_value_rows(entity_type, record.id, record.custom_fields, types)
    ]
    if rows:
        await conn.execute(insert(field_values), rows)


async def _known_types(
    conn: AsyncConnection, entity_type: str, records: Sequence[_WithFields]
) -> dict[int, str | None]:
    """Field id → type from the definitions (amocrm_custom_fields) of the fields in use."""
    ids = {
        field_id
        for record in records
        for entry in record.custom_fields
        if (field_id := int_id(entry.get("field_id"))) is not None
    }
    if not ids:
        return {}
    c = custom_fields.c
    query = select(c.id, c.type).where(c.entity_type == entity_type, c.id.in_(sorted(ids)))
    return {int(field_id): field_type for field_id, field_type in await conn.execute(query)}
