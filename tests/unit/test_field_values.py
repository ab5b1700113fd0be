"""core/field_values.py: how a custom-field value is typed, and what it does with bad ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from amosync.core.field_values import ROWS_PER_ENTITY_MAX, field_value_rows


def typed(field_type: str | None, value: object) -> tuple[Any, ...]:
    entry: dict[str, Any] = {"field_id": 1, "values": [{"value": value}]}
    if field_type is not None:
        entry["field_type"] = field_type
    [row] = field_value_rows("leads", 9, [entry], {})
    return row["value_text"], row["value_number"], row["value_datetime"]


@pytest.mark.parametrize(
    ("field_type", "value", "number"),
    [
        ("numeric", "4500", 4500.0),
        ("numeric", 4500, 4500.0),
        ("numeric", "1 500,50", 1500.5),
        ("numeric", "-0.5", -0.5),
        ("price", "1e3", 1000.0),
        ("monetary", 12.25, 12.25),
        ("numeric", "12abc", None),
        ("numeric", "nan", None),
        ("numeric", "1e400", None),
        ("numeric", True, None),
        ("numeric", "9" * 100, None),
    ],
)
def test_numbers(field_type: str, value: object, number: float | None) -> None:
    assert number == typed(field_type, value)[1]


@pytest.mark.parametrize(
    ("value", "moment"),
    [
        (1781222400, datetime(2026, 6, 12, tzinfo=UTC)),
        ("1781222400", datetime(2026, 6, 12, tzinfo=UTC)),
        (-31536000, datetime(1969, 1, 1, tzinfo=UTC)),
        ("2026-06-12", datetime(2026, 6, 12, tzinfo=UTC)),
        ("2026-06-12T10:00:00+03:00", datetime(2026, 6, 12, 7, tzinfo=UTC)),
        ("12.06.2026", None),
        (10**15, None),
        ("0001-01-01T00:00:00+01:00", None),
        (1.5e300, None),
    ],
)
def test_dates(value: object, moment: datetime | None) -> None:
    assert moment == typed("date_time", value)[2]


def test_checkbox_is_one_or_zero_and_keeps_its_text() -> None:
    assert ("true", 1.0, None) == typed("checkbox", True)
    assert ("false", 0.0, None) == typed("checkbox", False)
    assert ("1", 1.0, None) == typed("checkbox", "1")
    assert ("maybe", None, None) == typed("checkbox", "maybe")


def test_definition_type_wins_over_the_entry() -> None:
    entry = {"field_id": 1, "field_type": "text", "values": [{"value": "7"}]}
    [row] = field_value_rows("leads", 9, [entry], {1: "numeric"})
    assert 7.0 == row["value_number"]


def test_an_entity_has_a_bounded_number_of_rows() -> None:
    entries = [{"field_id": n, "values": [{"value": "x"}] * 5} for n in range(1, 1000)]
    assert ROWS_PER_ENTITY_MAX == len(field_value_rows("leads", 9, entries, {}))


def test_a_field_listed_twice_continues_its_positions() -> None:
    entries = [{"field_id": 1, "values": [{"value": "a"}]}, {"field_id": 1, "values": ["b"]}]
    rows = field_value_rows("contacts", 9, entries, {})
    assert [(0, "a"), (1, "b")] == [(r["position"], r["value_text"]) for r in rows]


def test_not_a_list_is_no_rows() -> None:
    assert [] == field_value_rows("leads", 9, None, {})
    assert [] == field_value_rows("leads", 9, {"field_id": 1}, {})


def test_timezone_is_kept_as_utc() -> None:
    moment = typed("date", "2026-06-12T00:00:00+05:00")[2]
    assert moment == datetime(2026, 6, 12, tzinfo=timezone(timedelta(hours=5)))
    assert moment.tzinfo == UTC
