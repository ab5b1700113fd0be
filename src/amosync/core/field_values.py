"""Rows of `amocrm_field_values` from an entity's `custom_fields_values`, typed by field type.

Pure and total: the values are whatever amoCRM (or someone posing as it) sent, so nothing
here raises. A value that does not fit its type is kept as text only; sizes are bounded, so
one hostile entity cannot make its batch's insert fail (an index entry over PostgreSQL's
~2.7 kB limit would) or grow the table without end.

Every value keeps `value_text` (the value as sent, as text), so a text search finds numbers,
dates and enum labels alike; the typed columns are filled when the value fits the type:
numbers → `value_number`, dates → `value_datetime`, checkboxes → `value_number` 1/0, enums
→ `enum_id`/`enum_code`. A multiselect (or multitext) gives one row per value, `position`
0, 1, … in the order amoCRM lists them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from amosync.core.mapping import int_id

# Indexed (field_id, value_text): a PostgreSQL btree entry must stay under ~2.7 kB, and 512
# characters are at most 2 kB of UTF-8. The whole value stays in the entity's custom_fields.
TEXT_MAX = 512
CODE_MAX = 255  # field_code, enum_code: amoCRM's are short names (PHONE, WORK, UTM_SOURCE)
VALUES_PER_FIELD_MAX = 100  # a multiselect of more options than this is not a real one
ROWS_PER_ENTITY_MAX = 1000  # real accounts have at most a few hundred fields

NUMBER_TYPES = frozenset({"numeric", "price", "monetary"})
DATE_TYPES = frozenset({"date", "date_time", "birthday"})
CHECKBOX = "checkbox"

# Dates as amoCRM may write them: unix seconds (API v4), possibly negative for a birthday
# before 1970, or an ISO 8601 text; anything else stays text.
_SECONDS = re.compile(r"-?[0-9]{1,12}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_ISO_MAX = 40


def field_value_rows(
    entity_type: str,
    entity_id: int,
    custom_fields: object,
    known_types: Mapping[int, str | None],
) -> list[dict[str, Any]]:
    """Every value of every field of one entity as a row (all rows have every column).

    `known_types`: field id → type from `amocrm_custom_fields`; a field not there is typed
    by the `field_type` its entry carries, else by the shape of its values.
    """
    if not isinstance(custom_fields, list):
        return []
    rows: list[dict[str, Any]] = []
    positions: dict[int, int] = {}  # a field listed twice continues its positions
    for entry in custom_fields:
        if not isinstance(entry, dict):
            continue
        field_id = int_id(entry.get("field_id"))
        if field_id is None:
            continue  # no key to store it under
        field_type = known_types.get(field_id) or _text(entry.get("field_type"), CODE_MAX)
        code = _text(entry.get("field_code"), CODE_MAX)
        for item in _items(entry.get("values")):
            if len(rows) >= ROWS_PER_ENTITY_MAX:
                return rows
            position = positions.get(field_id, 0)
            if position >= VALUES_PER_FIELD_MAX:
                break
            row = _typed(item, field_type)
            if row is None:
                continue
            positions[field_id] = position + 1
            row.update(
                entity_type=entity_type,
                entity_id=entity_id,
                field_id=field_id,
                field_code=code,
                position=position,
            )
            rows.append(row)
    return rows


def _items(values: object) -> list[dict[str, Any]]:
    """`values` as a list of `{value, enum_id?, enum_code?}` whatever shape it came in."""
    if isinstance(values, dict):
        return [values]
    if not isinstance(values, list):
        return []
    return [v if isinstance(v, dict) else {"value": v} for v in values[:VALUES_PER_FIELD_MAX]]


def _typed(item: dict[str, Any], field_type: str | None) -> dict[str, Any] | None:
    value = item.get("value")
    enum_id = int_id(item.get("enum_id"))
    enum_code = _text(item.get("enum_code"), CODE_MAX)
    if value is None and enum_id is None:
        return None  # nothing to keep
    row: dict[str, Any] = {
        "value_text": _as_text(value),
        "value_number": None,
        "value_datetime": None,
        "enum_id": enum_id,
        "enum_code": enum_code,
    }
    kind = field_type if field_type is not None else _shape(value)
    if kind in NUMBER_TYPES:
        row["value_number"] = _number(value)
    elif kind in DATE_TYPES:
        row["value_datetime"] = _datetime(value)
    elif kind == CHECKBOX:
        flag = _flag(value)
        row["value_number"] = None if flag is None else float(flag)
    return row


def _shape(value: object) -> str | None:
    """A type for a field whose definition and entry say none: only the unambiguous shapes."""
    if isinstance(value, bool):
        return CHECKBOX
    if isinstance(value, int | float):
        return "numeric"
    return None


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _as_text(value: object) -> str | None:
    """The value as sent, as text (bounded): a search over `value_text` finds every value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:TEXT_MAX]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    # Objects (a legal entity's details, a file, a linked entity): compact JSON. A value too
    # deep for the encoder is not a field value amoCRM sends; its shape name is kept instead.
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (ValueError, TypeError, RecursionError):
        text = type(value).__name__
    return text[:TEXT_MAX]


def _number_text(value: int | float) -> str:
    try:
        return str(value)[:TEXT_MAX]
    except ValueError:  # an int of more digits than Python converts (4300 by default)
        return "number"


def _number(value: object) -> float | None:
    """A finite float from a number or a number written as text ("1 500,50" too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = float(value) if abs(value) < 2**1023 else math.inf
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").replace("\u00a0", "")
        if len(text) > 64 or not _NUMBER.fullmatch(text):
            return None
        number = float(text.replace(",", "."))
    else:
        return None
    return number if math.isfinite(number) else None


def _datetime(value: object) -> datetime | None:
    """An aware UTC datetime from unix seconds (number or digits) or ISO 8601 text."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _SECONDS.fullmatch(text):
            seconds = float(text)
        elif len(text) <= _ISO_MAX:
            try:
                parsed = datetime.fromisoformat(text)
                return (
                    parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
                )
            except (ValueError, OverflowError):  # not ISO 8601, or its offset leaves year 1..9999
                return None
    if seconds is None or not math.isfinite(seconds):
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):  # beyond year 9999 or the platform's time_t
        return None


def _flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None
