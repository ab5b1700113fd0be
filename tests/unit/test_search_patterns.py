"""The search box's patterns (web/search.py): every letter case, special characters plain,
phones by digits."""

from __future__ import annotations

import re

import pytest

from amosync.web.search import glob_pattern, phone_digits, regex_pattern


def test_glob_classes_each_letter_and_keeps_special_characters_literal() -> None:
    assert "*[Ии][Рр]*" == glob_pattern("иР")
    assert "*[*][?][[][]]*" == glob_pattern("*?[]")
    assert "*[Ss]ß1*" == glob_pattern("sß1")  # "ß".upper() is "SS": no one-letter class


@pytest.mark.parametrize("q", ["ирина", "ИРИНА", "Ирина"])
def test_regex_matches_any_case(q: str) -> None:
    assert re.search(regex_pattern(q), "Клиент ИрИнА Петрова")


def test_regex_escapes_what_is_not_a_letter_or_digit() -> None:
    pattern = regex_pattern("a.b(1)")

    assert re.search(pattern, "xa.b(1)y")
    assert not re.search(pattern, "axb(1)")


@pytest.mark.parametrize(
    ("q", "digits"),
    [
        ("+7 (912) 345-67-89", "9123456789"),
        ("89123456789", "9123456789"),
        ("345-67-89", "3456789"),
        ("+44 20 7946 0958", "442079460958"),
        ("1234", None),  # too few digits to be a phone
        ("RP-12345", None),  # letters: not a phone
        ("", None),
    ],
)
def test_phone_digits(q: str, digits: str | None) -> None:
    assert digits == phone_digits(q)
