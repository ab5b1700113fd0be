"""Mapping of amoCRM API v4 leads, contacts and companies to stored records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amosync.core.mapping import (
    MappingError,
    RentProgField,
    embedded_items,
    epoch_to_datetime,
    extract_rentprog_id,
    map_contact,
    map_lead,
    map_lead_links,
)
from amosync.core.records import ContactRecord, DealContactLink, DealRecord

DATA = Path(__file__).resolve().parents[1] / "data"
NO_FIELD = RentProgField(field_id=None, field_name="RentProg ID")


def load(name: str) -> dict[str, Any]:
    with (DATA / name).open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def cf(values: Any, field_id: Any = 501, field_name: Any = "RentProg ID") -> dict[str, Any]:
    """One v4 `custom_fields_values` item with the given `values`."""
    return {
        "field_id": field_id,
        "field_name": field_name,
        "field_code": None,
        "field_type": "text",
        "values": values,
    }


# --- leads -----------------------------------------------------------------------------------


def test_real_lead_maps_every_field() -> None:
    """A real Kommo lead maps to a DealRecord with ints, UTC datetimes and raw kept as is."""
    obj = load("api_lead_single_with_contacts_kommo_auladisermx.json")
    expected = DealRecord(
        id=5765922,
        name="Lucia Gomez Ruiz",
        price=0,
        status_id=143,
        pipeline_id=7810667,
        responsible_user_id=10471703,
        created_at=datetime(2024, 3, 4, 19, 16, 3, tzinfo=UTC),
        updated_at=datetime(2024, 4, 24, 15, 0, 55, tzinfo=UTC),
        closed_at=datetime(2024, 3, 6, 15, 39, 40, tzinfo=UTC),
        is_deleted=False,
        rentprog_id=None,
        custom_fields=obj["custom_fields_values"],
        raw=obj,
        loss_reason_id=18764247,
        created_by=0,
        updated_by=0,
    )
    actual = map_lead(obj, NO_FIELD)
    assert expected == actual
    assert actual.raw is obj
    # Datetime equality ignores the zone, so check explicitly that the values are in UTC.
    stamps = [actual.created_at, actual.updated_at, actual.closed_at]
    expected_zones = [UTC, UTC, UTC]
    actual_zones = [stamp.tzinfo if stamp else None for stamp in stamps]
    assert expected_zones == actual_zones


def test_real_lead_links_come_from_embedded_contacts() -> None:
    """`_embedded.contacts` of the real lead yields its one main contact link."""
    obj = load("api_lead_single_with_contacts_kommo_auladisermx.json")
    expected = [DealContactLink(deal_id=5765922, contact_id=7140816, is_main=True)]
    actual = map_lead_links(obj)
    assert expected == actual


def test_lead_links_dedupe_and_default_is_main_false() -> None:
    """Duplicate contacts collapse to the first position, missing is_main means False."""
    obj = {
        "id": 1,
        "_embedded": {
            "contacts": [
                {"id": 10},
                {"id": 20, "is_main": False},
                {"id": 10, "is_main": True},
                {"id": "bad"},
                "garbage",
            ]
        },
    }
    expected = [
        DealContactLink(deal_id=1, contact_id=10, is_main=True),
        DealContactLink(deal_id=1, contact_id=20, is_main=False),
    ]
    actual = map_lead_links(obj)
    assert expected == actual


@pytest.mark.parametrize(
    "obj",
    [{"id": 1}, {"id": 1, "_embedded": {"tags": []}}, {"id": 1, "_embedded": []}],
)
def test_lead_links_without_embedded_contacts_are_empty(obj: dict[str, Any]) -> None:
    """A lead fetched without `with=contacts` has no links."""
    expected: list[DealContactLink] = []
    actual = map_lead_links(obj)
    assert expected == actual


def test_deleted_stub_maps_to_deleted_record_with_nulls() -> None:
    """A `with=only_deleted` stub is deleted, keeps id/updated_at and everything else is None."""
    obj = load("api_lead_only_deleted_excerpt_real.json")
    expected = DealRecord(
        id=2602691,
        name=None,
        price=None,
        status_id=None,
        pipeline_id=None,
        responsible_user_id=None,
        created_at=None,
        updated_at=datetime(2021, 3, 9, 12, 20, 20, tzinfo=UTC),
        closed_at=None,
        is_deleted=True,
        rentprog_id=None,
        custom_fields=[],
        raw=obj,
        updated_by=6795397,
    )
    assert expected == map_lead(obj, RentProgField(field_id=747418))


def test_minimal_lead_defaults() -> None:
    """A lead with only an id maps with is_deleted False, empty custom fields and an empty name."""
    obj: dict[str, Any] = {"id": 7, "name": "", "closed_at": None}
    expected = DealRecord(
        id=7,
        name="",
        price=None,
        status_id=None,
        pipeline_id=None,
        responsible_user_id=None,
        created_at=None,
        updated_at=None,
        closed_at=None,
        is_deleted=False,
        rentprog_id=None,
        custom_fields=[],
        raw=obj,
    )
    assert expected == map_lead(obj, NO_FIELD)


def test_lead_rentprog_id_by_configured_field_id() -> None:
    """map_lead fills rentprog_id from the configured field of the real lead."""
    obj = load("api_lead_single_with_contacts_kommo_auladisermx.json")
    expected = "1"
    actual = map_lead(obj, RentProgField(field_id=747418)).rentprog_id
    assert expected == actual


@pytest.mark.parametrize(
    "obj",
    [{}, {"id": None}, {"id": "57x"}, {"id": True}, {"id": 1.0}, {"name": "x"}, {"id": "9" * 20}],
)
def test_lead_without_integer_id_raises(obj: dict[str, Any]) -> None:
    """map_lead refuses an object whose id is missing or not an integer."""
    with pytest.raises(MappingError, match="id"):
        map_lead(obj, NO_FIELD)


def test_lead_id_written_as_a_string_is_the_same_id() -> None:
    """An answer writing the id as "5765922" maps to lead 5765922 (compared as integers)."""
    assert 5765922 == map_lead({"id": "5765922"}, NO_FIELD).id


def test_mapping_error_is_value_error() -> None:
    """MappingError can be caught as ValueError."""
    assert issubclass(MappingError, ValueError)


# --- contacts and companies -----------------------------------------------------------------


def test_contacts_list_docs_example() -> None:
    """Docs contacts with null custom fields have no phones/emails and keep empty names."""
    body = load("api_contacts_list_docs_example.json")
    items = embedded_items(body, "contacts")
    expected = [
        ContactRecord(
            id=7143599,
            name="1",
            first_name="",
            last_name="",
            responsible_user_id=504141,
            created_at=datetime(2020, 4, 1, 16, 21, 5, tzinfo=UTC),
            updated_at=datetime(2020, 4, 1, 16, 21, 5, tzinfo=UTC),
            is_deleted=False,
            phones=[],
            emails=[],
            custom_fields=[],
            raw=items[0],
        ),
        ContactRecord(
            id=7767065,
            name="dsgdsg",
            first_name="",
            last_name="",
            responsible_user_id=504141,
            created_at=datetime(2020, 4, 8, 15, 26, 30, tzinfo=UTC),
            updated_at=datetime(2020, 4, 8, 15, 26, 30, tzinfo=UTC),
            is_deleted=False,
            phones=[],
            emails=[],
            custom_fields=[],
            raw=items[1],
        ),
    ]
    assert expected == [map_contact(item) for item in items]


def test_single_contact_docs_example() -> None:
    """The docs single contact (with `enum` instead of `enum_code`) yields its phone."""
    obj = load("api_contact_single_docs_example.json")
    expected = ContactRecord(
        id=3,
        name="Иван Иванов",
        first_name="Иван",
        last_name="Иванов",
        responsible_user_id=504141,
        created_at=datetime(2020, 2, 19, 13, 2, 11, tzinfo=UTC),
        updated_at=datetime(2020, 5, 31, 16, 52, 9, tzinfo=UTC),
        is_deleted=False,
        phones=["+79123"],
        emails=[],
        custom_fields=obj["custom_fields_values"],
        raw=obj,
        phone="+79123",
    )
    assert expected == map_contact(obj)


def test_contact_phones_and_emails_are_trimmed_deduped_in_order() -> None:
    """PHONE/EMAIL values are stripped (incl. NBSP), empties dropped, duplicates removed."""
    obj = {
        "id": 9,
        "name": "Пётр",
        "custom_fields_values": [
            {
                "field_id": 1,
                "field_code": "PHONE",
                "values": [
                    {"value": " +7 900 000-00-01 ", "enum_code": "WORK"},
                    {"value": "\xa0", "enum_code": "MOB"},
                    {"value": "+79000000002\xa0", "enum_code": "MOB"},
                    {"value": "+7 900 000-00-01", "enum_code": "HOME"},
                    {"enum_code": "OTHER"},
                ],
            },
            {
                "field_id": 2,
                "field_code": "EMAIL",
                "values": [{"value": "a@example.com"}, {"value": ""}, {"value": "b@example.com"}],
            },
            {"field_id": 3, "field_code": "POSITION", "values": [{"value": "CEO"}]},
        ],
    }
    contact = map_contact(obj)
    expected = (
        ["+7 900 000-00-01", "+79000000002"],
        ["a@example.com", "b@example.com"],
        "+7 900 000-00-01",
    )
    actual = (contact.phones, contact.emails, contact.phone)
    assert expected == actual


def test_company_without_first_and_last_name() -> None:
    """A company object (no first/last name) maps with those fields None."""
    obj = {"id": 11, "name": "ООО Ромашка", "is_deleted": True, "custom_fields_values": None}
    expected = ContactRecord(
        id=11,
        name="ООО Ромашка",
        first_name=None,
        last_name=None,
        responsible_user_id=None,
        created_at=None,
        updated_at=None,
        is_deleted=True,
        phones=[],
        emails=[],
        custom_fields=[],
        raw=obj,
    )
    assert expected == map_contact(obj)


def test_contact_without_id_raises() -> None:
    """map_contact refuses an object without an integer id."""
    with pytest.raises(MappingError, match="id"):
        map_contact({"name": "x"})


# --- RentProg ID ----------------------------------------------------------------------------


def test_rentprog_by_id_ignores_name() -> None:
    """With field_id set, the field is found by id even when its name differs."""
    fields = [cf([{"value": "wrong"}], field_id=1), cf([{"value": "RP-1"}], 2, "Другое имя")]
    expected = "RP-1"
    actual = extract_rentprog_id(fields, RentProgField(field_id=2))
    assert expected == actual


def test_rentprog_by_id_does_not_fall_back_to_name() -> None:
    """With field_id set, a field matching only by name is not used."""
    fields = [cf([{"value": "RP-1"}], field_id=1, field_name="RentProg ID")]
    assert None is extract_rentprog_id(fields, RentProgField(field_id=2))


def test_rentprog_by_name_is_case_insensitive_and_trimmed() -> None:
    """Without field_id, the name matches case-insensitively after trimming (incl. NBSP)."""
    fields = [cf([{"value": "x"}], 1, "Other"), cf([{"value": "RP-2"}], 2, "\xa0 rentprog id ")]
    expected = "RP-2"
    actual = extract_rentprog_id(fields, RentProgField(field_id=None))
    assert expected == actual


def test_rentprog_by_cyrillic_name() -> None:
    """A Cyrillic configured name matches regardless of case and surrounding spaces."""
    fields = [cf([{"value": " 777 "}], 5, "ID РЕНТПРОГ\xa0")]
    field = RentProgField(field_id=None, field_name="  id рентпрог")
    expected = "777"
    actual = extract_rentprog_id(fields, field)
    assert expected == actual


def test_rentprog_value_is_trimmed_including_nbsp() -> None:
    """The value is returned without surrounding whitespace or NBSP."""
    expected = "RP 3"
    actual = extract_rentprog_id([cf([{"value": "\xa0 RP 3\t"}])], NO_FIELD)
    assert expected == actual


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12345, "12345"), (12345.0, "12345"), ("12345", "12345"), (12.5, "12.5")],
)
def test_rentprog_numeric_values_become_text(value: object, expected: str) -> None:
    """Numeric values are converted to text, whole floats without '.0'."""
    assert expected == extract_rentprog_id([cf([{"value": value}])], NO_FIELD)


def test_rentprog_enum_value_shape() -> None:
    """A select-style value with enum_id/enum_code still yields its value."""
    values = [{"value": "RP-9", "enum_id": 656296, "enum_code": None}]
    expected = "RP-9"
    actual = extract_rentprog_id([cf(values)], NO_FIELD)
    assert expected == actual


def test_rentprog_first_non_empty_value_wins() -> None:
    """Empty, missing and boolean values are skipped until a usable one is found."""
    values = [{"value": ""}, {"enum_id": 1}, {"value": True}, {"value": None}, {"value": "RP-4"}]
    expected = "RP-4"
    actual = extract_rentprog_id([cf(values)], NO_FIELD)
    assert expected == actual


@pytest.mark.parametrize(
    "values",
    [[{"value": ""}], [{"value": "   "}], [], None, "nope", [{"value": float("nan")}]],
)
def test_rentprog_empty_or_unusable_values_give_none(values: object) -> None:
    """A matching field with no usable value yields None."""
    assert None is extract_rentprog_id([cf(values)], NO_FIELD)


def test_rentprog_field_without_values_key_gives_none() -> None:
    """A matching field that has no `values` key at all yields None."""
    assert None is extract_rentprog_id([{"field_id": 1, "field_name": "RentProg ID"}], NO_FIELD)


def test_rentprog_webhook_value_shapes_are_accepted() -> None:
    """Bare scalars in the list and a single value object (webhook format) are understood."""
    expected = "42"
    actual = extract_rentprog_id([cf([42])], NO_FIELD)
    assert expected == actual
    expected = "RP-5"
    actual = extract_rentprog_id([cf({"value": "RP-5"})], NO_FIELD)
    assert expected == actual


def test_rentprog_string_field_id_matches() -> None:
    """A field id sent as a digit string still matches the configured int id."""
    expected = "RP-6"
    actual = extract_rentprog_id([cf([{"value": "RP-6"}], "501")], RentProgField(501))
    assert expected == actual


@pytest.mark.parametrize("fields", [None, [], "x", {"field_id": 501}, [None, 1, "x", []]])
def test_rentprog_malformed_container_gives_none(fields: Any) -> None:
    """Missing or malformed custom_fields_values yield None instead of raising."""
    assert None is extract_rentprog_id(fields, RentProgField(501))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
field_like = st.fixed_dictionaries(
    {},
    optional={
        "field_id": st.sampled_from([501, "501", None, True, 501.0]) | json_values,
        "field_name": st.sampled_from(["RentProg ID", " rentprog id\xa0", None]) | json_values,
        "values": json_values
        | st.lists(st.dictionaries(st.sampled_from(["value", "enum_id"]), json_values)),
    },
)


@settings(database=None)
@given(
    fields=json_values | st.lists(field_like | json_values, max_size=5),
    field=st.sampled_from([RentProgField(501), RentProgField(None), RentProgField(None, "")]),
)
def test_rentprog_never_raises_on_arbitrary_json(fields: Any, field: RentProgField) -> None:
    """For any JSON-like custom_fields_values the result is None or trimmed non-empty text."""
    actual = extract_rentprog_id(fields, field)
    assert actual is None or (actual == actual.strip() and actual != "")


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1709579763, datetime(2024, 3, 4, 19, 16, 3, tzinfo=UTC)),
        ("1709579763", datetime(2024, 3, 4, 19, 16, 3, tzinfo=UTC)),
        (1, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_epoch_to_datetime_valid(value: object, expected: datetime) -> None:
    """Unix seconds as int or digit string become an aware UTC datetime."""
    assert expected == epoch_to_datetime(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        "0",
        -1,
        "-1",
        True,
        False,
        "",
        "abc",
        "12a",
        "1.5",
        1.5,
        "²",
        "٣",
        [],
        {},
        10**20,
        "9" * 5000,
        "2021-03-09 12:20:20",
    ],
)
def test_epoch_to_datetime_garbage_is_none(value: object) -> None:
    """None, zero, negatives, bools, floats, non-digit and out-of-range values give None."""
    assert None is epoch_to_datetime(value)


# --- embedded_items ------------------------------------------------------------------------


def test_embedded_items_returns_list_objects() -> None:
    """The `_embedded[key]` objects of a HAL list are returned in order."""
    body = load("api_contacts_list_docs_example.json")
    expected = [7143599, 7767065]
    actual = [item["id"] for item in embedded_items(body, "contacts")]
    assert expected == actual


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"_embedded": None},
        {"_embedded": []},
        {"_embedded": {}},
        {"_embedded": {"leads": []}},
        {"_embedded": {"contacts": None}},
    ],
)
def test_embedded_items_empty_cases(body: dict[str, Any] | None) -> None:
    """A 204 (None) body or a missing/null collection means no items."""
    expected: list[dict[str, Any]] = []
    actual = embedded_items(body, "contacts")
    assert expected == actual


@pytest.mark.parametrize(
    "body",
    [
        {"_embedded": {"contacts": {"id": 1}}},
        {"_embedded": {"contacts": "x"}},
        {"_embedded": {"contacts": [{"id": 1}, 2]}},
        {"_embedded": [1]},
        {"_embedded": "x"},
        [],
    ],
)
def test_embedded_items_invalid_raises(body: Any) -> None:
    """A present collection that is not a list of objects is a MappingError."""
    with pytest.raises(MappingError):
        embedded_items(body, "contacts")
