"""Statements on `amocrm_contacts` and `amocrm_companies` (one shape, two tables)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.records import ContactRecord
from amosync.upsert.entity import mark_deleted, upsert_newer
from amosync.upsert.field_values import replace_field_values
from amosync.upsert.rows import record_rows

# amocrm_field_values.entity_type: amoCRM's entity names, as in amocrm_custom_fields.
_ENTITY_TYPES = {"amocrm_contacts": "contacts", "amocrm_companies": "companies"}


async def upsert_people(
    conn: AsyncConnection,
    table: Table,
    records: Sequence[ContactRecord],
    now: datetime,
    *,
    fetched_at: datetime | None = None,
    future_limit: datetime | None = None,
) -> set[int]:
    """Insert or update contacts (or companies); returns the ids whose row was written."""
    rows = record_rows(records, now)
    written = await upsert_newer(
        conn, table, rows, fetched_at=fetched_at, future_limit=future_limit
    )
    # The values follow the copy just stored, never one refused as older.
    await replace_field_values(conn, _ENTITY_TYPES[table.name], records, written)
    return written


async def mark_people_deleted(
    conn: AsyncConnection, table: Table, ids: Iterable[int], now: datetime
) -> int:
    """Flag stored contacts/companies proven deleted; returns how many changed."""
    return await mark_deleted(conn, table, ids, now)


async def missing_ids(conn: AsyncConnection, table: Table, ids: Iterable[int]) -> set[int]:
    """Which of these ids have no row yet."""
    wanted = set(ids)
    if not wanted:
        return set()
    present = (
        await conn.execute(select(table.c.id).where(table.c.id.in_(sorted(wanted))))
    ).scalars()
    return wanted - set(present)
