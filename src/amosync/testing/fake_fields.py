"""Ids and custom-field builders of the fake account, shaped like real API v4 values.

The ids are arbitrary but fixed, so tests and the `amosync dev fake-amocrm` command can
name them (for example `AMOSYNC_RENTPROG_FIELD_ID=RENTPROG_FIELD_ID`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEFAULT_ACCOUNT_ID = 31000001
DEFAULT_SUBDOMAIN = "testaccount"
DEFAULT_TOKEN = "test-token"  # noqa: S105 - a well-known test token, not a secret
DEFAULT_USER_ID = 9000001
DEFAULT_PIPELINE_ID = 7000001
DEFAULT_STATUS_ID = 47000001
# amoCRM's system stages, the same in every pipeline of every account.
STATUS_WON = 142
STATUS_LOST = 143
CLOSED_STATUSES = frozenset({STATUS_WON, STATUS_LOST})

RENTPROG_FIELD_ID = 700001
PHONE_FIELD_ID = 600001
EMAIL_FIELD_ID = 600003
BIRTHDAY_FIELD_ID = 600005
# One lead field of every other type the fake renders (fake_custom_fields.py defines them).
SOURCE_FIELD_ID = 700003  # text
ISSUE_DATE_FIELD_ID = 700005  # date
RENT_PRICE_FIELD_ID = 700007  # numeric
PAID_FIELD_ID = 700009  # checkbox
CAR_CLASS_FIELD_ID = 700011  # select
OPTIONS_FIELD_ID = 700013  # multiselect
RENTAL_START_FIELD_ID = 700015  # date_time
LINK_FIELD_ID = 700017  # url
NOTE_FIELD_ID = 700019  # textarea
ENUM_TYPES = frozenset({"select", "multiselect", "radiobutton"})

# Enum ids differ per account in reality; clients must key on `enum_code`, never on these.
_PHONE_ENUMS = {
    "WORK": 800001,
    "WORKDD": 800003,
    "MOB": 800005,
    "FAX": 800007,
    "HOME": 800009,
    "OTHER": 800011,
}
_EMAIL_ENUMS = {"WORK": 800013, "PRIV": 800015, "OTHER": 800017}

# A phone or e-mail is either a bare value (enum WORK, the UI default) or (value, enum_code).
Multitext = str | tuple[str, str]


def rentprog_field(
    value: str | int, field_id: int = RENTPROG_FIELD_ID, name: str = "RentProg ID"
) -> dict[str, Any]:
    """One `custom_fields_values` item of a plain text field, as the API returns it."""
    return {
        "field_id": field_id,
        "field_name": name,
        "field_code": None,
        "field_type": "text",
        "values": [{"value": str(value)}],
    }


def field_value(definition: dict[str, Any], *values: object) -> dict[str, Any] | None:
    """The `custom_fields_values` item of the field `definition` (as `GET .../custom_fields`
    returns it) holding `values`, shaped like the real API's; None for no values (the API
    leaves the field out).

    Lists (select, multiselect, radiobutton) take option labels: each value carries the
    option's `enum_id` and `enum_code` null, as in a captured lead. Checkboxes take booleans;
    date, date_time and birthday take unix seconds (ints). Numbers go out as text: the v4
    reads seen write a numeric value as a string; amosync accepts a JSON number as well.
    """
    type_ = definition["type"]
    items: list[dict[str, Any]] = []
    for value in values:
        if type_ in ENUM_TYPES:
            enum = next((e for e in definition["enums"] or [] if e["value"] == value), None)
            if enum is None:
                raise ValueError(f"field {definition['id']} has no option {value!r}")
            items.append({"value": value, "enum_id": enum["id"], "enum_code": None})
        elif type_ in ("numeric", "price", "monetary"):
            items.append({"value": str(value)})
        else:
            items.append({"value": value})
    if not items:
        return None
    return {
        "field_id": definition["id"],
        "field_name": definition["name"],
        "field_code": definition["code"],
        "field_type": type_,
        "values": items,
    }


def phone_field(phones: Iterable[Multitext]) -> dict[str, Any] | None:
    """The PHONE multitext field, or None when there are no phones (the API omits it)."""
    return _multitext(PHONE_FIELD_ID, "Телефон", "PHONE", _PHONE_ENUMS, phones)


def email_field(emails: Iterable[Multitext]) -> dict[str, Any] | None:
    """The EMAIL multitext field, or None when there are no e-mails."""
    return _multitext(EMAIL_FIELD_ID, "Email", "EMAIL", _EMAIL_ENUMS, emails)


def _multitext(
    field_id: int,
    name: str,
    code: str,
    enums: dict[str, int],
    items: Iterable[Multitext],
) -> dict[str, Any] | None:
    values: list[dict[str, Any]] = []
    for item in items:
        value, enum_code = (item, "WORK") if isinstance(item, str) else item
        if enum_code not in enums:
            raise ValueError(f"{code} enum_code must be one of {sorted(enums)}, got {enum_code!r}")
        values.append({"value": value, "enum_id": enums[enum_code], "enum_code": enum_code})
    if not values:
        return None
    return {
        "field_id": field_id,
        "field_name": name,
        "field_code": code,
        "field_type": "multitext",
        "values": values,
    }


def with_contact_fields(
    custom_fields_values: list[dict[str, Any]] | None,
    phones: Iterable[Multitext] | None,
    emails: Iterable[Multitext] | None,
) -> list[dict[str, Any]] | None:
    """Replace the PHONE/EMAIL fields in `custom_fields_values` (None = leave that one as is).

    Returns None for an empty result because the API sends `null`, not `[]`.
    """
    fields = [dict(f) for f in custom_fields_values or []]
    for code, items, build in (("PHONE", phones, phone_field), ("EMAIL", emails, email_field)):
        if items is None:
            continue
        fields = [f for f in fields if f.get("field_code") != code]
        built = build(items)
        if built is not None:
            fields.append(built)
    return fields or None
