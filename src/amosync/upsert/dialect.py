"""The newer-wins rule every entity upsert applies (the INSERT construct is in db/dialect.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, and_, not_, or_


def newer_wins(table: Table, excluded: Any) -> ColumnElement[bool]:
    """When an incoming copy may replace the stored row.

    - a strictly newer `updated_at` always wins (retries and reordered deliveries cannot
      bring an older state back);
    - the same `updated_at` refreshes the row (derived columns such as the RentProg ID follow
      a configuration change) unless the row was marked deleted after it was fetched: a
      slower worker holding a copy from before the deletion must not resurrect it;
    - a row without `updated_at` (a deletion stub) takes any real copy, so a restored entity
      comes back.
    """
    stored, incoming = table.c.updated_at, excluded.updated_at
    return or_(
        stored.is_(None),
        incoming > stored,
        and_(incoming == stored, not_(table.c.is_deleted)),
    )
