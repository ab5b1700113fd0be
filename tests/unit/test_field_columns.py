"""AMOSYNC_DEAL_FIELD_COLUMNS: parsing and the checks that need no database."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as POSTGRESQL_RESERVED
from sqlalchemy.dialects.sqlite.base import SQLiteIdentifierPreparer

from amosync.core.field_columns import RESERVED, FieldColumn, parse_field_columns
from amosync.db.wide_view import column_sql, view_sql
from amosync.settings import Settings


def test_default_is_no_aliases() -> None:
    assert () == Settings(_env_file=None).deal_field_column_list


def test_aliases_in_order_spaces_and_a_trailing_comma_ignored() -> None:
    parsed = parse_field_columns(" rental_start : 123456 , car:234567,")
    assert (FieldColumn("rental_start", 123456), FieldColumn("car", 234567)) == parsed
    assert () == parse_field_columns("  ")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("rental_start", "“rental_start” is not alias:field_id"),
        ("rental_start:", "“rental_start:” is not alias:field_id"),
        (":123", "“:123” is not alias:field_id"),
        ("Rental:1", "alias “Rental” must be lower-case latin letters"),
        ("1st:1", "alias “1st” must be lower-case latin letters"),
        ("дата:1", "alias “дата” must be lower-case latin letters"),
        ("rental-start:1", "alias “rental-start” must be lower-case latin letters"),
        ("a" * 64 + ":1", "is longer than 63 characters"),
        ("select:1", "alias “select” is a reserved SQL word"),
        ("order:1", "alias “order” is a reserved SQL word"),
        ("car:1,car:2", "alias “car” is given twice"),
        ("car:1,auto:1", "field 1 is given twice (as “car” and “auto”)"),
        ("car:x", "field id “x” of “car” is not a positive whole number"),
        ("car:0", "field id “0” of “car” is not a positive whole number"),
        ("car:-5", "field id “-5” of “car” is not a positive whole number"),
        ("car:99999999999999999999", "is not a positive whole number"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(value: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, deal_field_columns=value)
    (error,) = caught.value.errors()
    assert ("deal_field_columns",) == error["loc"]
    assert problem in error["msg"]


def test_reserved_words_cover_both_databases() -> None:
    """Every word SQLAlchemy quotes on PostgreSQL or SQLite is refused as an alias."""
    assert set(POSTGRESQL_RESERVED) | set(SQLiteIdentifierPreparer.reserved_words) <= RESERVED


def test_column_per_field_type() -> None:
    """The value column each amoCRM field type reads; multiselect joins all values."""
    assert "SELECT v.value_number " in column_sql(1, "numeric", "sqlite")
    for kind in ("date", "date_time", "birthday"):
        assert "SELECT v.value_datetime " in column_sql(1, kind, "postgresql")
    assert "SELECT v.value_number <> 0 " in column_sql(1, "checkbox", "sqlite")
    assert "SELECT v.value_number " in column_sql(1, "monetary", "postgresql")
    for text_kind in ("text", "select", "url", None):
        assert "SELECT v.value_text " in column_sql(1, text_kind, "sqlite")
    assert "string_agg(v.value_text, '; ' ORDER BY v.position)" in column_sql(
        1, "multiselect", "postgresql"
    )
    assert "group_concat(value_text, '; ')" in column_sql(1, "multiselect", "sqlite")
    sql = view_sql([FieldColumn("car", 7)], {7: "select"}, "sqlite")
    assert sql.startswith("CREATE VIEW amocrm_deals_wide AS\nSELECT\n    n.*,")
    assert "v.field_id = 7 ORDER BY v.position LIMIT 1) AS car\nFROM amocrm_deals_named n" in sql
