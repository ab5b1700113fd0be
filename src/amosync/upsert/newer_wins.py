"""The newer-wins rule every entity upsert applies (the INSERT construct is in db/dialect.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Table, and_, bindparam, not_, or_

from amosync.db.types import UTCDateTime

# Per-statement values, the same in every row of one execution (SQLAlchemy takes a value
# outside VALUES from the first parameter set): when the answer was requested, and the
# database clock plus the allowed skew.
FETCHED_AT = "guard_fetched_at"
FUTURE_LIMIT = "guard_future_limit"


def _moment(name: str) -> BindParameter[Any]:
    return bindparam(name, type_=UTCDateTime())


def newer_wins(table: Table, excluded: Any) -> ColumnElement[bool]:
    """When an incoming copy may replace the stored row.

    - never when the copy is the same as the row: `synced_at`, and with it the read API's
      change feed, moves only when something changed (a deletion flag counts);
    - never when the row was flagged deleted after the copy was requested: a slower worker
      holding a copy from before the deletion must not resurrect it;
    - a strictly newer `updated_at` wins, and the same one refreshes the row (derived
      columns such as the RentProg ID follow a configuration change);
    - a row flagged deleted takes any copy requested after the flag was set, whatever its
      `updated_at`: amoCRM returning the entity proves it exists;
    - a row without `updated_at` (a deletion stub of older versions), or with one beyond
      the database clock plus the allowed skew (stored before that was refused), takes any
      real copy, so nothing stays frozen.
    """
    stored = table.c
    fetched_at, future_limit = _moment(FETCHED_AT), _moment(FUTURE_LIMIT)
    return and_(
        changed(table, excluded),
        not_(and_(stored.is_deleted, stored.synced_at > fetched_at)),
        or_(
            excluded.updated_at >= stored.updated_at,
            and_(stored.is_deleted, not_(excluded.is_deleted)),
            stored.updated_at.is_(None),
            stored.updated_at > future_limit,
        ),
    )


def changed(table: Table, excluded: Any) -> ColumnElement[bool]:
    """Whether any stored column (all but `id` and `synced_at`) differs from the copy."""
    return or_(
        *(
            column.is_distinct_from(excluded[column.name])
            for column in table.columns
            if column.name not in ("id", "synced_at")
        )
    )
