"""The view `amocrm_deals_wide`: every column of `amocrm_deals_named` plus one typed column per
alias of `AMOSYNC_DEAL_FIELD_COLUMNS` (core/field_columns.py), read from
`amocrm_field_values`.

It is made by code, not by a migration, because it depends on a setting: `amosync migrate`
and `serve` call `sync_wide_view` at start (inside the migration's transaction), and the
worker's reference refresh calls it again after storing field definitions, so columns typed
as text before the first refresh get their types within seconds of it.

The view is dropped and created only when its SQL differs from the SQL recorded under
`STATE_KEY` (or it is missing): on PostgreSQL a re-created view loses the GRANTs an operator
gave a BI role, and recreating at every start would also take a lock readers wait on.

Types come from the field's type in `amocrm_custom_fields` (leads): numeric (and price,
monetary) → the number, date/date_time/birthday → the timestamp, checkbox → boolean,
multiselect → every value's text joined with "; " in amoCRM's order, others → the text of
the first value. A field id with no definition is an error once definitions are stored;
before the first reference refresh stored any, every alias is text (see `Plan.unchecked`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, inspect, select, text

from amosync.core.field_columns import SETTING, FieldColumn
from amosync.core.field_values import CHECKBOX, DATE_TYPES, NUMBER_TYPES
from amosync.db.schema_lock import lock_schema
from amosync.db.tables import custom_fields, sync_state
from amosync.errors import ConfigError

VIEW = "amocrm_deals_wide"
BASE_VIEW = "amocrm_deals_named"
STATE_KEY = "deal_field_columns.view"
MULTI_SEPARATOR = "; "


class FieldColumnsError(ConfigError):
    """An alias names a field amoCRM has no deal field for, or clashes with a deal column."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What `sync_wide_view` did: the view's SQL (None: no view), whether it was (re)created,
    and whether the field ids could not be checked (no lead field definitions stored yet)."""

    sql: str | None
    changed: bool
    unchecked: bool


def _values(column: str, field_id: int) -> str:
    """The deal's values of one field, as a subquery body. Only our own names and an int
    are formatted in: aliases are checked identifiers (core/field_columns.py)."""
    return (
        f"SELECT {column} FROM amocrm_field_values v WHERE v.entity_type = 'leads' "  # noqa: S608
        f"AND v.entity_id = n.id AND v.field_id = {int(field_id)}"
    )


def column_sql(field_id: int, field_type: str | None, dialect: str) -> str:
    """The expression of one alias column. A scalar subquery over the value rows: it uses the
    values table's primary key (entity_type, entity_id, field_id, position), so a reader who
    picks a few deals pays a few index probes, and on SQLite the column keeps the declared
    type of the value column it selects (a CAST would erase it)."""
    if field_type == "multiselect":
        # The one dialect-specific piece: PostgreSQL has no group_concat, and SQLite has
        # string_agg only from 3.44 (a view using it would make the file's whole schema
        # unreadable to an older sqlite3). SQLite keeps the inner ORDER BY's order.
        if dialect == "postgresql":
            inner = f"string_agg(v.value_text, '{MULTI_SEPARATOR}' ORDER BY v.position)"
            return f"({_values(inner, field_id)})"
        ordered = f"{_values('v.value_text', field_id)} ORDER BY v.position"
        joined = f"group_concat(value_text, '{MULTI_SEPARATOR}')"
        return f"(SELECT {joined} FROM ({ordered}))"  # noqa: S608 - see _values
    # The types the upsert fills value_number / value_datetime for (core/field_values.py).
    if field_type in NUMBER_TYPES:
        value = "v.value_number"
    elif field_type in DATE_TYPES:
        value = "v.value_datetime"
    elif field_type == CHECKBOX:
        value = "v.value_number <> 0"  # stored 1/0; NULL when amoCRM sent something else
    else:
        value = "v.value_text"
    return f"({_values(value, field_id)} ORDER BY v.position LIMIT 1)"


def view_sql(columns: Sequence[FieldColumn], types: dict[int, str | None], dialect: str) -> str:
    """CREATE VIEW for `columns`, typed by `types` (field id → amoCRM type; absent: text)."""
    extra = ",\n    ".join(
        f"{column_sql(c.field_id, types.get(c.field_id), dialect)} AS {c.alias}" for c in columns
    )
    # n.* rather than a list: the named view grows with the schema, and `upgrade` recreates
    # this view after every migration (PostgreSQL freezes * at creation).
    return f"CREATE VIEW {VIEW} AS\nSELECT\n    n.*,\n    {extra}\nFROM {BASE_VIEW} n\n"


def lead_field_types(conn: Connection) -> dict[int, str | None]:
    """Every lead custom field's type by id (fields deleted in amoCRM too: old deals keep
    their values)."""
    rows = conn.execute(
        select(custom_fields.c.id, custom_fields.c.type).where(
            custom_fields.c.entity_type == "leads"
        )
    )
    return {int(field_id): field_type for field_id, field_type in rows}


def _check(conn: Connection, columns: Sequence[FieldColumn], types: dict[int, str | None]) -> None:
    deal_columns = {c["name"] for c in inspect(conn).get_columns(BASE_VIEW)}
    for column in columns:
        if column.alias in deal_columns:
            raise FieldColumnsError(
                f"{SETTING}: alias “{column.alias}” is already a column of {BASE_VIEW}"
            )
    if not types:
        return
    for column in columns:
        if column.field_id not in types:
            raise FieldColumnsError(
                f"{SETTING}: field {column.field_id} (“{column.alias}”) is not a deal custom "
                "field of this amoCRM account"
            )


def _recorded(conn: Connection) -> str | None:
    value = conn.execute(select(sync_state.c.value).where(sync_state.c.key == STATE_KEY)).scalar()
    return value.get("sql") if isinstance(value, dict) else None


def _record(conn: Connection, sql: str | None) -> None:
    conn.execute(delete(sync_state).where(sync_state.c.key == STATE_KEY))
    if sql is not None:
        value: dict[str, Any] = {"sql": sql}
        conn.execute(
            insert(sync_state).values(key=STATE_KEY, value=value, updated_at=datetime.now(UTC))
        )


def drop_wide_view(conn: Connection) -> None:
    """Drop the view (a migration that rebuilds a table under the named view needs it gone)."""
    conn.execute(text(f"DROP VIEW IF EXISTS {VIEW}"))


def sync_wide_view(conn: Connection, columns: Sequence[FieldColumn]) -> Plan:
    """Make the view match `columns` (none: no view), inside the caller's transaction.

    Raises FieldColumnsError (one line naming the setting) for an alias that is a deal column
    or a field id with no lead field definition, once any definition is stored; the caller's
    transaction then rolls back and the view stays as it was."""
    lock_schema(conn)  # re-entrant: `upgrade` holds it already
    exists = VIEW in inspect(conn).get_view_names()
    if not columns:
        if exists:
            drop_wide_view(conn)
        _record(conn, None)
        return Plan(None, exists, unchecked=False)
    types = lead_field_types(conn)
    _check(conn, columns, types)
    sql = view_sql(columns, types, conn.dialect.name)
    unchecked = not types
    if exists and _recorded(conn) == sql:
        return Plan(sql, False, unchecked)
    if exists:
        drop_wide_view(conn)
    conn.execute(text(sql))
    _record(conn, sql)
    return Plan(sql, True, unchecked)
