"""Repair writes: replace a stored row with amoCRM's copy, whatever the newer-wins rule says.

The normal upsert (entity.py) refuses a copy whose `updated_at` is older than the stored
one, and the same `updated_at` when the row is marked deleted. That protects against
reordered deliveries, but it also keeps a wrong row forever: a bogus future `updated_at`,
or a deletion flag on an entity that is alive. Verification has just read amoCRM, which is
the truth, so it overwrites the rows it found diverging, by id.

Each write is a compare-and-set on `synced_at` (every write of a row moves it): when the
worker stored a fresher copy between verification's read and this write, the row is left
alone rather than replaced by the older one verification holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncConnection


async def overwrite_row(
    conn: AsyncConnection, table: Table, row: Mapping[str, Any], seen_synced_at: datetime
) -> bool:
    """Replace the row `row["id"]` with `row` if it is still as read; True when written.

    `row` has all of the table's columns (as `upsert.rows.record_rows` builds them).
    """
    values = {k: v for k, v in row.items() if k != "id"}
    result = await conn.execute(
        update(table)
        .where(table.c.id == row["id"], table.c.synced_at == seen_synced_at)
        .values(**values)
    )
    return result.rowcount == 1


async def flag_deleted(
    conn: AsyncConnection, table: Table, entity_id: int, seen_synced_at: datetime, now: datetime
) -> bool:
    """Mark a row deleted (amoCRM confirmed it) if it is still as read; True when written."""
    result = await conn.execute(
        update(table)
        .where(table.c.id == entity_id, table.c.synced_at == seen_synced_at)
        .values(is_deleted=True, synced_at=now)
    )
    return result.rowcount == 1
