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
