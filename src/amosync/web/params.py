"""Numbers and dates from a URL, read without trusting their size.

`int()` refuses strings of more than 4,300 digits with ValueError, and an ISO date near year
1 or 9999 with an offset overflows when converted to UTC: both became 500s. Here a digit
string longer than any 64-bit id, or a date whose UTC form does not exist, is simply not a
valid value, and callers answer 400 (the read API) or use their default (the status page).
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_ID = 2**63 - 1  # BIGINT: anything larger cannot name a row
_MAX_DIGITS = len(str(MAX_ID))


def bounded_int(raw: str, low: int, high: int) -> int | None:
    """`raw` as an int when it is ASCII digits with a value in [low, high], else None."""
    if not raw.isascii() or not raw.isdigit():
        return None
    digits = raw.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:
        return None
    value = int(digits)
    return value if low <= value <= high else None


def utc_datetime(raw: str, *, naive_is_utc: bool = True) -> datetime | None:
    """An ISO 8601 date-time in UTC, or None when it is not one, has no UTC form (year 1
    minus an hour, year 9999 plus one) or, unless `naive_is_utc`, carries no offset."""
    if len(raw) > 64:  # the longest ISO form is ~40 characters
        return None
    try:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC) if naive_is_utc else None
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
