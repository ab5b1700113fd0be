"""decode_php_form: PHP `$_POST` decoding of amoCRM webhook bodies."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, quote_plus, unquote_to_bytes

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from amosync.core.form import FormDecodeError, decode_php_form

DATA = Path(__file__).parents[1] / "data"
FORMS = sorted(DATA.glob("webhook_*.form"))


def reason_of(body: bytes, **limits: int) -> str:
    with pytest.raises(FormDecodeError) as info:
        decode_php_form(body, **limits)
    assert (True, info.value.reason) == (isinstance(info.value, ValueError), str(info.value))
    return info.value.reason


@pytest.mark.parametrize("form", FORMS, ids=[p.stem for p in FORMS])
def test_fixture_decodes_to_its_json_twin(form: Path) -> None:
    """Every captured body decodes to exactly its PHP-decoded `.json` twin."""
    expected = json.loads(form.with_suffix(".json").read_text(encoding="utf-8"))
    assert expected == decode_php_form(form.read_bytes())


def test_fixtures_are_present() -> None:
    """The fixture glob is not silently empty."""
    assert len(FORMS) >= 20


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a=1+2%2B3", {"a": "1 2+3"}),
        (b"n=%D0%90%D0%B1%D0%B8%D0%B1%D0%B0+%E2%82%BD", {"n": "Абиба ₽"}),
        (b"n=%d0%90", {"n": "А"}),
        (b"a=x%26y%3Dz", {"a": "x&y=z"}),
        (b"a=b=c", {"a": "b=c"}),
        (b"a&b=1", {"a": "", "b": "1"}),
        (b"a=100%&b=%zz%4&c=%", {"a": "100%", "b": "%zz%4", "c": "%"}),
        (b"a=%0A%09%C2%A0", {"a": "\n\t\u00a0"}),
        (b"a=\xd0\x90", {"a": "А"}),
        (b"&&a=1&&", {"a": "1"}),
    ],
)
def test_percent_and_plus_decoding(body: bytes, expected: dict[str, Any]) -> None:
    """`+` is a space, `%2B` a plus, escapes are UTF-8, lone `%` stays literal."""
    assert expected == decode_php_form(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a[]=x&a[]=y", {"a": ["x", "y"]}),
        (b"a[5]=x&a[]=y", {"a": {"5": "x", "6": "y"}}),
        (b"a[x]=1&a[]=2", {"a": {"x": "1", "0": "2"}}),
        (b"a[]=x&a[7]=y&a[]=z", {"a": {"0": "x", "7": "y", "8": "z"}}),
        (b"a[b][][c]=1&a[b][][c]=2", {"a": {"b": [{"c": "1"}, {"c": "2"}]}}),
        (b"a[1]=y&a[0]=x", {"a": ["x", "y"]}),
        (b"a[0]=x&a[2]=z", {"a": {"0": "x", "2": "z"}}),
        (b"a[00]=x", {"a": {"00": "x"}}),
        (b"0=a&1=b", {"0": "a", "1": "b"}),
    ],
)
def test_arrays_and_lists(body: bytes, expected: dict[str, Any]) -> None:
    """`a[]` appends after the largest integer key; keys exactly 0..n-1 become a list."""
    assert expected == decode_php_form(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a=1&a=2", {"a": "2"}),
        (b"a[b]=1&a[c]=3&a[b]=2", {"a": {"b": "2", "c": "3"}}),
        (b"a=1&a[b]=2", {"a": {"b": "2"}}),
        (b"a[b]=2&a=1", {"a": "1"}),
        (b"a[b][c]=1&a[b]=2", {"a": {"b": "2"}}),
        (b"a[0]=x&a[0][y]=z", {"a": [{"y": "z"}]}),
    ],
)
def test_later_duplicates_and_type_conflicts_win(body: bytes, expected: dict[str, Any]) -> None:
    """A later field overwrites an earlier one, whatever their shapes (as PHP does)."""
    assert expected == decode_php_form(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a[b=1", {"a_b": "1"}),
        (b"a.b[c=1", {"a_b_c": "1"}),
        (b"a]b=1", {"a]b": "1"}),
        (b"a[b]c=1", {"a": {"b": "1"}}),
        (b"a[b][c=1", {"a": {"b": "1"}}),
        (b"a[b]]=1", {"a": {"b": "1"}}),
        (b"a[[b]]=1", {"a": {"[b": "1"}}),
        (b"a[]]=1", {"a": ["1"]}),
        (b"a.b+c=1", {"a_b_c": "1"}),
        (b"+a=1", {"a": "1"}),
        (b"a.b[c.d]=1", {"a_b": {"c.d": "1"}}),
        (b"a%00b[c]=1", {"a": "1"}),
        (b"a[b%00c]=1", {"a_b": "1"}),
    ],
)
def test_odd_names_follow_php(body: bytes, expected: dict[str, Any]) -> None:
    """Unbalanced brackets, dots, spaces and NULs in names are read the way PHP reads them."""
    assert expected == decode_php_form(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"&&&", "no usable fields"),
        (b"=x&[a]=1&+=2&%00=3", "no usable fields"),
        (b"a=%FF", "invalid UTF-8"),
        (b"a=%D0", "invalid UTF-8"),
        (b"a=%ED%A0%80", "invalid UTF-8"),
        (b"a=\xd0", "invalid UTF-8"),
        (b"%C3%28=1", "invalid UTF-8"),
        (b"a=\xfe&b=1", "invalid UTF-8"),
        (b"a=%FE%", "invalid UTF-8"),
    ],
)
def test_unusable_bodies_are_rejected(body: bytes, reason: str) -> None:
    """Empty, nameless or non-UTF-8 bodies raise FormDecodeError with a short reason."""
    assert reason == reason_of(body)


def test_max_fields() -> None:
    """At most `max_fields` fields are accepted, counted by their `&` separators."""
    expected = ({"a": "1", "b": "2"}, "more than 2 fields", "more than 10000 fields")
    actual = (
        decode_php_form(b"a=1&b=2", max_fields=2),
        reason_of(b"a=1&b=2&c=3", max_fields=2),
        reason_of(b"a=1&" * 10_000),
    )
    assert expected == actual


def test_max_depth() -> None:
    """A key may have `max_depth` bracket levels, not more."""
    node: Any = decode_php_form(b"a" + b"[x]" * 32 + b"=1")["a"]
    for _ in range(32):
        node = node["x"]
    expected = ("1", "key nested deeper than 32 levels", "key nested deeper than 3 levels")
    actual = (
        node,
        reason_of(b"a" + b"[x]" * 33 + b"=1"),
        reason_of(b"a[x][x][x][x]garbage]=1", max_depth=3),
    )
    assert expected == actual


def test_depth_limit_applies_to_cached_names() -> None:
    """A name parsed earlier under a looser limit is still checked against a tighter one."""
    body = b"q[a][b][c]=1"
    expected = ({"q": {"a": {"b": {"c": "1"}}}}, "key nested deeper than 2 levels")
    assert expected == (decode_php_form(body), reason_of(body, max_depth=2))


def test_very_deep_key_fails_fast() -> None:
    """A 10 000-level key is refused without building anything (well under a second)."""
    expected = "key nested deeper than 32 levels"
    for body in (b"a" + b"[x]" * 10_000 + b"=1", b"a" + b"[x]" * 10_000 + b"]=1"):
        started = time.perf_counter()
        assert expected == reason_of(body)
        assert time.perf_counter() - started < 1.0


# --- properties ---------------------------------------------------------------------------

TOKENS = [b"%", b"&", b"=", b"+", b"[", b"]", b"a", b"0", b"1", b"%5B", b"%5D", b"%D0%90"]
TOKENS += [b"%ff", b"%fe", b"\xd0", b"\x90", b"\xff", b"%0a", b"\r\n", b"%00", b"_", b".", b" "]
BODIES = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(TOKENS)).map(b"".join))


def outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode_php_form(body, max_depth=8)
    except FormDecodeError as exc:
        return "error", exc.reason


@settings(max_examples=400)
@given(BODIES)
def test_any_bytes_give_a_dict_or_form_decode_error(body: bytes) -> None:
    """Arbitrary bytes never raise anything but FormDecodeError."""
    kind, result = outcome(body)
    assert (kind, type(result)) in {("ok", dict), ("error", str)}


def canonical(body: bytes) -> bytes:
    """The same fields, re-escaped by urllib from urllib's own byte-level decoding."""

    def escape(piece: bytes) -> bytes:
        return quote_from_bytes(unquote_to_bytes(piece.replace(b"+", b" ")), safe="").encode()

    fields = (part.partition(b"=") for part in body.split(b"&"))
    return b"&".join(escape(name) + sep + escape(value) for name, sep, value in fields)


@settings(max_examples=400)
@given(BODIES)
def test_decoding_matches_urllib_reference(body: bytes) -> None:
    """The one-pass C decoding agrees with urllib's field-by-field decoding on any input."""
    assert outcome(canonical(body)) == outcome(body)


def http_build_query(data: dict[str, Any], prefix: str = "") -> str:
    """A small PHP `http_build_query` for nested dicts of strings."""
    pairs = []
    for key, value in data.items():
        name = f"{prefix}%5B{quote_plus(key, safe='')}%5D" if prefix else quote_plus(key, safe="")
        if isinstance(value, str):
            pairs.append(f"{name}={quote_plus(value, safe='')}")
        else:
            pairs.append(http_build_query(value, name))
    return "&".join(pairs)


def as_php_json(value: Any) -> Any:
    """What the `.json` twins do: dicts keyed exactly 0..n-1 become lists."""
    if isinstance(value, str):
        return value
    converted = {k: as_php_json(v) for k, v in value.items()}
    if converted.keys() == {str(i) for i in range(len(converted))}:
        return [converted[str(i)] for i in range(len(converted))]
    return converted


TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
TOP_KEYS = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters=" .[]\x00"), min_size=1
)
NESTED_KEYS = st.one_of(
    st.integers(0, 3).map(str),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="]\x00"), min_size=1),
)
TREES = st.recursive(
    TEXT, lambda kids: st.dictionaries(NESTED_KEYS, kids, min_size=1, max_size=4), max_leaves=12
)


@settings(max_examples=300)
@given(st.dictionaries(TOP_KEYS, TREES, min_size=1, max_size=4))
def test_round_trip_through_http_build_query(data: dict[str, Any]) -> None:
    """Nested string data encoded the PHP way decodes back to itself (lists for 0..n-1 keys)."""
    expected = {k: as_php_json(v) for k, v in data.items()}
    assert expected == decode_php_form(http_build_query(data).encode())


# --- equivalence with a straightforward reference decoder ---------------------------------


def reference_decode(body: bytes, max_depth: int) -> tuple[str, Any]:
    """PHP `$_POST` decoding written the obvious way: urllib per field, walk from the root."""
    if not body:
        return "error", "empty body"
    fields = [part.partition(b"=") for part in body.split(b"&") if part]
    raw = [
        (unquote_to_bytes(n.replace(b"+", b" ")), unquote_to_bytes(v.replace(b"+", b" ")))
        for n, _, v in fields
    ]
    # 0xFE/0xFF anywhere is reported before any per-field error (see form._percent_decode).
    if any(b"\xfe" in piece or b"\xff" in piece for pair in raw for piece in pair):
        return "error", "invalid UTF-8"
    root: dict[str, Any] = {}
    for raw_name, raw_value in raw:
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            return "error", "invalid UTF-8"
        split = reference_split(name)
        if split is None:
            continue  # an ignored field's value is never read
        if len(split[1]) > max_depth:
            return "error", f"key nested deeper than {max_depth} levels"
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            return "error", "invalid UTF-8"
        reference_store(root, split[0], split[1], value)
    if not root:
        return "error", "no usable fields"
    return "ok", {key: reference_lists(child) for key, child in root.items()}


def reference_split(name: str) -> tuple[str, list[str]] | None:
    name = name.split("\x00")[0].lstrip(" ")
    start = name.find("[")
    if not name or start == 0:
        return None
    if start < 0:
        return name.replace(" ", "_").replace(".", "_"), []
    base = name[:start].replace(" ", "_").replace(".", "_")
    segments: list[str] = []
    pos = start
    while pos < len(name) and name[pos] == "[":
        close = name.find("]", pos + 1)
        if close < 0:
            if segments:
                break
            rest = name[start + 1 :]
            return base + "_" + "".join("_" if c in " .[" else c for c in rest), []
        segments.append(name[pos + 1 : close])
        pos = close + 1
    return base, segments


def reference_int(key: str) -> int | None:
    digits = key.isascii() and key.isdigit() and len(key) <= 18
    return int(key) if digits and (key == "0" or key[0] != "0") else None


def reference_store(root: dict[str, Any], base: str, segments: list[str], value: str) -> None:
    node, key = root, base
    for segment in segments:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
        if segment:
            key = segment
        else:
            used = [k for k in map(reference_int, node) if k is not None]
            key = str(max(used) + 1 if used else 0)
    node[key] = value


def reference_lists(node: Any) -> Any:
    if isinstance(node, str):
        return node
    converted = {key: reference_lists(child) for key, child in node.items()}
    if converted.keys() == {str(i) for i in range(len(converted))}:
        return [converted[str(i)] for i in range(len(converted))]
    return converted


NAME_TOKENS = [
    "a",
    "b",
    "0",
    "1",
    "01",
    "[",
    "]",
    "[]",
    "[0]",
    "[1]",
    "[a]",
    "%5B",
    "%5D",
    ".",
    " ",
]
NAME_TOKENS += ["%00", "%01", "%D0%90", "%FE", "\xd0"]
FIELD_NAMES = st.lists(st.sampled_from(NAME_TOKENS), max_size=6).map("".join)
FIELD_VALUES = st.sampled_from(["", "x", "1", "%41", "%", "=", "+", "%01", "%D0", "%0A", "\r\n"])
FIELD_BODIES = st.lists(
    st.tuples(FIELD_NAMES, st.sampled_from(["=", ""]), FIELD_VALUES), min_size=1, max_size=8
).map(
    lambda fields: "&".join(name + sep + value for name, sep, value in fields).encode(
        "utf-8", "surrogateescape"
    )
)


@settings(max_examples=600)
@given(st.one_of(BODIES, FIELD_BODIES))
@example(b"a[b]=1&a=2&a[c]=3")
@example(b"a[b][c]=1&a[b]=2&a[b][d]=3&a[0]=4")
@example(b"a[1]=x&a[0]=y&b[]=1&b[]=2")
def test_decoding_matches_a_reference_decoder(body: bytes) -> None:
    """The decoder agrees with a field-by-field reference on any body, errors included, and
    again when the same body comes back (its names' plans are cached then)."""
    expected = reference_decode(body, max_depth=8)
    assert [expected] * 3 == [outcome(body) for _ in range(3)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a[b]=1&a=2&a[c]=3", {"a": {"c": "3"}}),
        (b"a[b][c]=1&a[b]=2&a[b][d]=3", {"a": {"b": {"d": "3"}}}),
        (b"x[0][y]=1&x[0]=2&x[0][z]=3", {"x": [{"z": "3"}]}),
    ],
)
def test_container_replaced_by_a_string_is_not_written_again(
    body: bytes, expected: dict[str, Any]
) -> None:
    """After `a=2` replaces the array `a`, a later `a[c]` starts a new array (as PHP does),
    on first sight and when the shape repeats."""
    assert [expected] * 3 == [decode_php_form(body) for _ in range(3)]


def test_fixtures_match_the_reference_decoder() -> None:
    """The captured bodies decode as the reference decodes them, on first sight and after."""
    for form in FORMS:
        body = form.read_bytes()
        assert [reference_decode(body, max_depth=8)] * 3 == [outcome(body) for _ in range(3)]
