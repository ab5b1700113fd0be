"""U+0000 is taken out of decoded amoCRM JSON (core/nul.py), keys and nested values too."""

from __future__ import annotations

from amosync.core.nul import without_nul


def test_nul_is_removed_everywhere_in_decoded_json() -> None:
    answer = {
        "id": 7,
        "name": "Kia\x00 Rio",
        "price": 1.5,
        "is_deleted": False,
        "closed_at": None,
        "custom_fields_values": [{"values": [{"value": "81\x002"}]}],
        "odd\x00key": ["\x00", "ok"],
    }
    assert without_nul(answer) == {
        "id": 7,
        "name": "Kia Rio",
        "price": 1.5,
        "is_deleted": False,
        "closed_at": None,
        "custom_fields_values": [{"values": [{"value": "812"}]}],
        "oddkey": ["", "ok"],
    }


def test_strings_without_nul_come_back_unchanged() -> None:
    text = "Аренда"
    assert without_nul(text) is text
    assert without_nul({"a": [text, 1]}) == {"a": [text, 1]}
