"""`AMOSYNC_DEAL_FIELD_COLUMNS`: aliases for deal custom fields, `alias:field id,…`.

Each alias becomes a column of the view `amocrm_deals_wide` (db/wide_view.py), written bare
in readers' SQL (`SELECT rental_start FROM amocrm_deals_wide`). So an alias must read the
same, unquoted, on SQLite and PostgreSQL: lower-case letters, digits and `_`, not starting
with a digit, at most 63 characters (PostgreSQL cuts longer names silently), and not a word
either database reserves (it would need quotes). Pure parsing: whether the field exists, and
whether the alias clashes with a deal column, is decided against the database at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SETTING = "AMOSYNC_DEAL_FIELD_COLUMNS"
MAX_ALIAS = 63  # PostgreSQL's NAMEDATALEN - 1
_ALIAS = re.compile(r"[a-z_][a-z0-9_]*")
_INT64_MAX = 2**63 - 1

# Words PostgreSQL or SQLite reserve (SQLAlchemy's two lists, which quote them; a unit test
# keeps this a superset of both). A reserved word as a bare column name is a syntax error
# in the reader's query, which would show up far from the setting that caused it.
RESERVED = frozenset(
    """
    add after all alter analyse analyze and any array as asc asymmetric attach authorization
    autoincrement before begin between binary both by cascade case cast check collate column
    commit conflict constraint create cross current_catalog current_date current_role
    current_schema current_time current_timestamp current_user database default deferrable
    deferred delete desc detach distinct do drop each else end escape except exclusive exists
    explain fail false fetch for foreign freeze from full glob grant group having if ignore
    ilike immediate in index indexed initially inner insert instead intersect into is isnull
    join key leading left like limit localtime localtimestamp match natural new not notnull
    null of off offset old on only or order outer over overlaps placing plan pragma primary
    query raise references reindex rename replace restrict returning right rollback row select
    session_user set similar some symmetric table temp temporary then to trailing transaction
    trigger true union unique update user using vacuum values variadic verbose view virtual
    when where window with
    """.split()  # noqa: SIM905 - a list literal of 154 words would fill 154 lines
)


@dataclass(frozen=True, slots=True)
class FieldColumn:
    """One alias: the view column `alias` shows the deal custom field `field_id`."""

    alias: str
    field_id: int


def parse_field_columns(text: str | None) -> tuple[FieldColumn, ...]:
    """The aliases in `text`, in the order given; ValueError naming the first bad item.

    Empty or blank: no aliases (the view is dropped). Spaces around items, names and ids are
    ignored; a trailing comma is not an error.
    """
    if text is None or not text.strip():
        return ()
    columns: list[FieldColumn] = []
    aliases: set[str] = set()
    field_ids: dict[int, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        alias, sep, raw_id = (piece.strip() for piece in item.partition(":"))
        if not sep or not alias or not raw_id:
            raise ValueError(f"“{item}” is not alias:field_id (e.g. rental_start:123456)")
        _check_alias(alias)
        field_id = _field_id(raw_id, alias)
        if alias in aliases:
            raise ValueError(f"alias “{alias}” is given twice")
        if field_id in field_ids:
            raise ValueError(
                f"field {field_id} is given twice (as “{field_ids[field_id]}” and “{alias}”)"
            )
        aliases.add(alias)
        field_ids[field_id] = alias
        columns.append(FieldColumn(alias, field_id))
    return tuple(columns)


def _check_alias(alias: str) -> None:
    if not _ALIAS.fullmatch(alias):
        raise ValueError(
            f"alias “{alias}” must be lower-case latin letters, digits and _, "
            "not starting with a digit"
        )
    if len(alias) > MAX_ALIAS:
        raise ValueError(f"alias “{alias}” is longer than {MAX_ALIAS} characters")
    if alias in RESERVED:
        raise ValueError(f"alias “{alias}” is a reserved SQL word")


def _field_id(raw: str, alias: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= _INT64_MAX:
        raise ValueError(f"field id “{raw}” of “{alias}” is not a positive whole number")
    return int(raw)
