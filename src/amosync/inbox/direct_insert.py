"""The inbox INSERT for a driver used directly, with values converted as SQLAlchemy would.

The direct appenders (SQLite: `sqlite_append.py`, PostgreSQL: `postgres_append.py`) skip
SQLAlchemy's per-statement work on the webhook path, but must store exactly what
`InboxStore.append` stores. So the statement and the conversions come from the table
definition and the engine's own type processors, prepared once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Dialect

from amosync.db.tables import webhook_events

_Convert = Callable[[Any], Any] | None
# Columns of one type (class and arguments, as `repr` shows them) convert a value the same way.
_Kind = str


class DirectInsert:
    """`sql` takes one row of positional parameters; `params(rows)` builds them."""

    def __init__(self, dialect: Dialect, mark: str) -> None:
        self._columns: list[tuple[str, Any, _Convert, _Kind]] = [
            (
                column.name,
                column.default.arg if column.default is not None else None,  # type: ignore[attr-defined]
                column.type.dialect_impl(dialect).bind_processor(dialect),
                repr(column.type),
            )
            for column in webhook_events.columns
            if not column.primary_key
        ]
        names = ", ".join(name for name, *_ in self._columns)
        self._row_marks = "(" + ", ".join(mark for _ in self._columns) + ")"
        self.sql = f"INSERT INTO {webhook_events.name} ({names}) VALUES {self._row_marks}"  # noqa: S608 - names come from our table definition
        self._multi_row: dict[int, str] = {1: self.sql}

    def multi_row_sql(self, rows: int) -> str:
        """One INSERT of `rows` rows, taking their parameters one row after another."""
        sql = self._multi_row.get(rows)
        if sql is None:
            sql = self._multi_row[rows] = (
                self.sql + ", " + ", ".join([self._row_marks] * (rows - 1))
            )
        return sql

    def params(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        # A request's rows share one datetime for `received_at` and `available_at`, and
        # converting it costs ~5 µs through the type processors: convert each distinct one
        # once per column type, not once per column and row.
        converted: dict[tuple[_Kind, datetime], Any] = {}
        return [self._values(row, converted) for row in rows]

    def _values(
        self, row: Mapping[str, Any], converted: dict[tuple[_Kind, datetime], Any]
    ) -> tuple[Any, ...]:
        values = []
        for name, default, convert, kind in self._columns:
            value = row.get(name, default)
            if convert is not None and value is not None:
                if type(value) is datetime:
                    key = (kind, value)
                    if key not in converted:
                        converted[key] = convert(value)
                    value = converted[key]
                else:
                    value = convert(value)
            values.append(value)
        return tuple(values)
