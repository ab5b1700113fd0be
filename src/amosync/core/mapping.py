"""Turn amoCRM API v4 objects (leads, contacts, companies) into the rows amosync stores.

Everything here is pure: it takes decoded JSON and returns `core.records` values. The API is
mostly well-typed, but deleted stubs carry `null` almost everywhere and documentation examples
differ from real responses, so every optional field is read defensively and only a missing or
non-integer `id` is treated as an error (without it a row cannot be stored at all).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from amosync.core.records import ContactRecord, DealContactLink, DealRecord

__all__ = [
    "MappingError",
    "RentProgField",
    "embedded_items",
    "epoch_to_datetime",
    "extract_rentprog_id",
    "int_id",
    "lead_company_ids",
    "lead_tags",
    "map_contact",
    "map_lead",
    "map_lead_links",
]

# Ids and unix seconds written as text; ASCII only because `str.isdigit` also accepts "²" and "٣".
_DIGITS = re.compile(r"[0-9]+")


class MappingError(ValueError):
    """An API object cannot be mapped to a row (for now: its `id` is missing or not an int)."""


@dataclass(frozen=True)
class RentProgField:
    """How to find the RentProg ID custom field in `custom_fields_values`.

    Matching by `field_id` is preferred because field names are user-editable (and often
    Cyrillic); the name is only a fallback for setups that did not configure the id.
    """

    field_id: int | None
    field_name: str = "RentProg ID"


# Every integer we store goes into a BIGINT column; a larger one would make the insert fail
# (OverflowError on SQLite, DataError on PostgreSQL) instead of being refused as bad input.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int_or_none(value: object) -> int | None:
    # bool is an int subclass; `true` is never a valid id or amount in the API.
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _norm_name(value: str) -> str:
    # `str.strip()` without arguments also removes NBSP, which amoCRM users paste into names.
    return value.strip().casefold()


def _scalar_to_text(value: object) -> str | None:
    """A custom-field value as trimmed text, or None when it is empty or not a usable scalar."""
    if isinstance(value, bool):
        # Checkbox values are booleans; "True" is never an identifier or a phone number.
        return None
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        # Numeric fields may come back as 12345.0; the stored id must read "12345".
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        return None
    return text or None


def _value_items(values: object) -> list[object]:
    """The raw values of one custom field, whatever shape `values` has.

    API v4 sends a list of `{value, enum_id?, enum_code?}` objects; the webhook format
    also uses bare scalars in the list or a single object, so those are accepted too.
    """
    if isinstance(values, dict):
        return [values.get("value")]
    if not isinstance(values, list):
        return []
    items: list[object] = []
    for item in values:
        items.append(item.get("value") if isinstance(item, dict) else item)
    return items


def _int_like(value: object) -> int | None:
    """An int, or a digit string as sent by the webhook format; anything else is None."""
    if isinstance(value, str):
        text = value.strip()
        # Real ids are short; the length cap keeps `int()` cheap on hostile input.
        return int(text) if len(text) <= 20 and _DIGITS.fullmatch(text) else None
    return _int_or_none(value)


def int_id(value: object) -> int | None:
    """An entity id as amoCRM may write it: a JSON integer or a digit string ("123"), within
    the BIGINT range of the id columns; None for anything else."""
    return _int_or_none(_int_like(value))


def _field_matches(entry: dict[Any, Any], field: RentProgField) -> bool:
    if field.field_id is not None:
        return _int_like(entry.get("field_id")) == field.field_id
    name = entry.get("field_name")
    return isinstance(name, str) and _norm_name(name) == _norm_name(field.field_name)


def extract_rentprog_id(
    custom_fields_values: list[dict[str, Any]] | None, field: RentProgField
) -> str | None:
    """The first non-empty value of the RentProg ID field as trimmed text, else None.

    Never raises: the input is whatever the API returned, and a malformed custom field must not
    stop the deal itself from being stored.
    """
    # Widen to `object` so the defensive checks below are not "unreachable" for the type checker.
    fields: object = custom_fields_values
    if not isinstance(fields, list):
        return None
    for entry in fields:
        if not isinstance(entry, dict) or not _field_matches(entry, field):
            continue
        for value in _value_items(entry.get("values")):
            text = _scalar_to_text(value)
            if text is not None:
                return text
    return None


def epoch_to_datetime(value: object) -> datetime | None:
    """Unix seconds (int or digit string) as an aware UTC datetime; None for anything else.

    0 means "not set" in amoCRM (e.g. `closed_at` of an open deal in old payloads), so it maps to
    None like negatives, bools, floats and garbage.
    """
    seconds = _int_like(value)
    if seconds is None or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        # Beyond year 9999 or the platform's time_t range.
        return None


def _custom_fields(value: object) -> list[dict[str, Any]]:
    # `custom_fields_values` is `null` when an entity has no values; keep only objects so the
    # stored column always holds a list of field objects.
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _require_id(obj: object, what: str) -> int:
    if not isinstance(obj, dict):
        raise MappingError(f"{what} is not a JSON object: {type(obj).__name__}")
    if "id" not in obj:
        raise MappingError(f"{what} has no id")
    # Compared as an integer whatever JSON type the answer used: a "123" is lead 123.
    entity_id = int_id(obj["id"])
    if entity_id is None:
        raise MappingError(f"{what} id is not an integer: {obj['id']!r}")
    return entity_id


def map_lead(obj: dict[str, Any], field: RentProgField) -> DealRecord:
    """A v4 lead object (full or deleted stub) as a `DealRecord`; `raw` keeps `obj` unchanged."""
    deal_id = _require_id(obj, "lead")
    custom_fields = _custom_fields(obj.get("custom_fields_values"))
    return DealRecord(
        id=deal_id,
        name=_str_or_none(obj.get("name")),
        price=_int_or_none(obj.get("price")),
        status_id=_int_or_none(obj.get("status_id")),
        pipeline_id=_int_or_none(obj.get("pipeline_id")),
        responsible_user_id=_int_or_none(obj.get("responsible_user_id")),
        created_at=epoch_to_datetime(obj.get("created_at")),
        updated_at=epoch_to_datetime(obj.get("updated_at")),
        closed_at=epoch_to_datetime(obj.get("closed_at")),
        is_deleted=obj.get("is_deleted") is True,
        rentprog_id=extract_rentprog_id(custom_fields, field),
        custom_fields=custom_fields,
        raw=obj,
        loss_reason_id=_int_or_none(obj.get("loss_reason_id")),
        created_by=_int_or_none(obj.get("created_by")),
        updated_by=_int_or_none(obj.get("updated_by")),
    )


def _embedded_list(obj: dict[str, Any], key: str) -> list[Any]:
    embedded = obj.get("_embedded")
    if not isinstance(embedded, dict):
        return []
    items = embedded.get(key)
    return items if isinstance(items, list) else []


def map_lead_links(obj: dict[str, Any]) -> list[DealContactLink]:
    """The deal↔contact links in a lead's `_embedded.contacts` (present with `with=contacts`).

    A contact listed twice yields one link, at its first position; it is main if any of its
    entries says so, because losing the "main contact" flag is worse than a stale duplicate.
    """
    deal_id = _require_id(obj, "lead")
    links: dict[int, bool] = {}
    for item in _embedded_list(obj, "contacts"):
        if not isinstance(item, dict):
            continue
        contact_id = int_id(item.get("id"))
        if contact_id is None:
            continue
        links[contact_id] = links.get(contact_id, False) or item.get("is_main") is True
    return [
        DealContactLink(deal_id=deal_id, contact_id=contact_id, is_main=is_main)
        for contact_id, is_main in links.items()
    ]


# A tag name is indexed (amocrm_deal_tags): bounded like a field value's text.
TAG_NAME_MAX = 512


def lead_tags(obj: dict[str, Any]) -> dict[int, str | None]:
    """Tag id → name from a lead's `_embedded.tags` (`{id, name, color}`); a repeated id
    keeps its first name, an entry without an integer id is skipped."""
    tags: dict[int, str | None] = {}
    for item in _embedded_list(obj, "tags"):
        if isinstance(item, dict) and (tag_id := int_id(item.get("id"))) is not None:
            name = item.get("name")
            tags.setdefault(tag_id, name[:TAG_NAME_MAX] if isinstance(name, str) else None)
    return tags


def lead_company_ids(obj: dict[str, Any]) -> list[int]:
    """The company ids in a lead's `_embedded.companies` (`{id, _links}`), each once."""
    ids = (int_id(i.get("id")) for i in _embedded_list(obj, "companies") if isinstance(i, dict))
    return list(dict.fromkeys(i for i in ids if i is not None))


def _multitext(custom_fields: list[dict[str, Any]], code: str) -> list[str]:
    """Trimmed, non-empty, de-duplicated values of every field with `field_code == code`."""
    seen: dict[str, None] = {}
    for entry in custom_fields:
        if entry.get("field_code") != code:
            continue
        for value in _value_items(entry.get("values")):
            text = _scalar_to_text(value)
            if text is not None:
                seen.setdefault(text, None)
    return list(seen)


def map_contact(obj: dict[str, Any]) -> ContactRecord:
    """A v4 contact or company object as a `ContactRecord` (companies have no first/last name)."""
    contact_id = _require_id(obj, "contact")
    custom_fields = _custom_fields(obj.get("custom_fields_values"))
    phones = _multitext(custom_fields, "PHONE")
    return ContactRecord(
        id=contact_id,
        name=_str_or_none(obj.get("name")),
        first_name=_str_or_none(obj.get("first_name")),
        last_name=_str_or_none(obj.get("last_name")),
        responsible_user_id=_int_or_none(obj.get("responsible_user_id")),
        created_at=epoch_to_datetime(obj.get("created_at")),
        updated_at=epoch_to_datetime(obj.get("updated_at")),
        is_deleted=obj.get("is_deleted") is True,
        phones=phones,
        emails=_multitext(custom_fields, "EMAIL"),
        custom_fields=custom_fields,
        raw=obj,
        phone=phones[0] if phones else None,
    )


def embedded_items(body: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """The `_embedded[key]` objects of a HAL list response; `[]` when there is nothing.

    A 204 response has no body (None), and amoCRM writes empty collections as `null` or, being
    PHP, as `[]` for `_embedded` itself, so all of those mean "no items". Anything else that is
    not a list of objects is a protocol change worth failing loudly on.
    """
    data: object = body
    if data is None:
        return []
    if not isinstance(data, dict):
        raise MappingError(f"response body is not a JSON object: {type(data).__name__}")
    embedded = data.get("_embedded")
    if embedded is None or embedded == []:
        return []
    if not isinstance(embedded, dict):
        raise MappingError(f"_embedded is not an object: {type(embedded).__name__}")
    items = embedded.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise MappingError(f"_embedded.{key} is not a list: {type(items).__name__}")
    result: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise MappingError(f"_embedded.{key}[{index}] is not an object: {type(item).__name__}")
        result.append(item)
    return result
