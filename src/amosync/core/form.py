"""Decode an `application/x-www-form-urlencoded` body the way PHP fills `$_POST`.

amoCRM builds webhook bodies with PHP's `http_build_query`, so the faithful reading is PHP's:
`a[b][0][c]=v` keys become nested arrays, which are then mapped the way `json_encode` maps them
(keys exactly 0..n-1 make a list, anything else an object). Like PHP, a later duplicate field
overwrites an earlier one, a name ends at a NUL byte, leading spaces are dropped, ` `/`.` in the
top-level name become `_`, and an unclosed first `[` is part of the name (as `_`).

Deliberate choices where PHP is silent, lax or unsafe for us:

- Invalid UTF-8 (after percent-decoding) is an error: PHP passes bytes through, we need text.
- Too many fields or too deep a key is an error instead of PHP's silent truncation, so a damaged
  body is rejected rather than half-read.
- A key that conflicts in type with an earlier one (`a=1&a[b]=2`, or the reverse) follows PHP:
  the later field wins and replaces the earlier value, because raising would reject bodies PHP
  itself accepts.
- The top level always stays a dict, even when its keys happen to be "0".."n-1".
"""

from __future__ import annotations

import re
from binascii import a2b_qp
from typing import Any, TypeAlias
from urllib.parse import unquote_to_bytes

__all__ = ["FormDecodeError", "decode_php_form"]

# PHP replaces these characters in the top-level name (before the first `[`) with `_`.
_BASE_MANGLE = str.maketrans(" .", "__")
# ...and, when the first `[` is never closed, these in the rest of the name as well.
_REST_MANGLE = str.maketrans(" .[", "___")
# PHP treats "0", "17", ... as integer keys; longer digit runs overflow to string keys. Capping the
# length also keeps int() away from Python's limit on huge digit strings.
_MAX_INT_KEY_LEN = 18
# A `%` that does not start a `%XX` escape; PHP keeps it literally.
_LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
# Stand-ins for the raw `&` and `=` separators while the body is percent-decoded in one pass.
_AMP = b"\xfe"
_EQ = b"\xff"

_Node: TypeAlias = dict[str, Any]
# A parsed field name: the top-level name and its bracket segments ("" = append).
_Name: TypeAlias = tuple[str, tuple[str, ...]]

# amoCRM sends the same few hundred field names over and over, so parsing each name once and
# keying the result by its raw bytes saves most of the per-field work. Long names are not cached,
# and the cache is emptied when full, so hostile bodies cannot grow it without bound.
_NAME_CACHE: dict[bytes, _Name | None] = {}
_CACHE_SIZE = 4096
_CACHE_KEY_MAX = 256
_MISS: _Name = ("", ())


class FormDecodeError(ValueError):
    """The body is not a usable form body; `.reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_php_form(
    body: bytes, *, max_fields: int = 10_000, max_depth: int = 32
) -> dict[str, Any]:
    """Decode `body` with PHP `$_POST` semantics; every leaf is a `str`.

    Raises FormDecodeError for an empty or unusable body, invalid UTF-8, more than `max_fields`
    fields or a key nested deeper than `max_depth` brackets.
    """
    if not body:
        raise FormDecodeError("empty body")
    # Counting separators is a single C-level scan, so an oversized body is refused before any
    # allocation proportional to its field count.
    if body.count(b"&") >= max_fields:
        raise FormDecodeError(f"more than {max_fields} fields")

    data = _percent_decode(body)
    root: _Node = {}
    created: list[tuple[_Node, str, _Node]] = []
    counters: dict[int, int] = {}
    try:
        for field in data.split(_AMP):
            if not field:
                continue
            raw_name, _, raw_value = field.partition(_EQ)
            if _EQ in raw_value:
                raw_value = raw_value.replace(_EQ, b"=")  # a raw `=` inside the value
            parsed = _NAME_CACHE.get(raw_name, _MISS)
            if parsed is _MISS:
                parsed = _split_name(raw_name.decode("utf-8"), max_depth)
                _remember(raw_name, parsed)
            elif parsed is not None and len(parsed[1]) > max_depth:
                raise _too_deep(max_depth)
            if parsed is not None:
                _store(root, *parsed, raw_value.decode("utf-8"), created, counters)
    except UnicodeDecodeError:
        raise FormDecodeError("invalid UTF-8") from None
    if not root:
        raise FormDecodeError("no usable fields")
    _convert_lists(created)
    return root


def _percent_decode(body: bytes) -> bytes:
    """Percent-decode the whole body at once, raw `&`/`=` turned into _AMP/_EQ first.

    Decoding field by field costs a Python call per name and value; one pass over the body
    does the same work in C. The separators must survive the pass distinguishable from the
    decoded `%26`/`%3D`, and 0xFE/0xFF are the two bytes that never occur in UTF-8: any of them
    found in the body, or produced by decoding, means invalid UTF-8 anyway.
    """
    if _AMP in body or _EQ in body:
        raise FormDecodeError("invalid UTF-8")
    data = body.replace(b"+", b" ").replace(b"&", _AMP).replace(b"=", _EQ)
    if b"%" not in data:
        return data
    if _LONE_PERCENT.search(data) is None:
        # Quoted-printable decoding is the same `=XX` -> byte step, in C (urllib's decoder
        # loops in Python over every escape, and amoCRM escapes every bracket and every
        # Cyrillic byte). With no raw `=` left and every `%` starting a valid escape, no other
        # quoted-printable rule (soft line breaks, `==`, a trailing `=`) can apply.
        decoded = a2b_qp(data.replace(b"%", b"="))
    else:
        decoded = unquote_to_bytes(data)  # PHP keeps a lone `%` literally; so does urllib
    if decoded.count(_AMP) != body.count(b"&") or decoded.count(_EQ) != body.count(b"="):
        raise FormDecodeError("invalid UTF-8")
    return decoded


def _remember(raw_name: bytes, parsed: _Name | None) -> None:
    if len(raw_name) <= _CACHE_KEY_MAX:
        if len(_NAME_CACHE) >= _CACHE_SIZE:
            _NAME_CACHE.clear()  # crude, but bounded and O(1) amortised
        _NAME_CACHE[raw_name] = parsed


def _too_deep(max_depth: int) -> FormDecodeError:
    return FormDecodeError(f"key nested deeper than {max_depth} levels")


def _split_name(name: str, max_depth: int) -> _Name | None:
    """Split `a[b][]` into ("a", ["b", ""]) as PHP does; "" means append. None: skip the field."""
    if "\x00" in name:
        # PHP handles names as C strings, so a NUL ends the name.
        name = name[: name.index("\x00")]
    name = name.lstrip(" ")
    i = name.find("[")
    if i < 0:
        return (name.translate(_BASE_MANGLE), ()) if name else None
    if i == 0:
        return None
    base = name[:i].translate(_BASE_MANGLE)
    inner = name[i + 1 : -1]
    # Fast path for well-formed keys: every `]` inside is immediately followed by `[`.
    if name[-1] == "]" and inner.count("]") == inner.count("]["):
        segments = inner.split("][", max_depth)
    else:
        slow = _split_slow(name, i, max_depth)
        if slow is None:
            # The first `[` is never closed: PHP reads the whole thing as one plain name.
            return base + "_" + name[i + 1 :].translate(_REST_MANGLE), ()
        segments = slow
    if len(segments) > max_depth:
        raise _too_deep(max_depth)
    return base, tuple(segments)


def _split_slow(name: str, i: int, max_depth: int) -> list[str] | None:
    """PHP's bracket walk for odd keys: stop at the first malformed part, ignore the rest."""
    segments: list[str] = []
    end = len(name)
    pos = i
    while pos < end and name[pos] == "[":
        close = name.find("]", pos + 1)
        if close < 0:
            if not segments:
                return None
            break
        segments.append(name[pos + 1 : close])
        if len(segments) > max_depth:
            break  # the caller reports it; no need to read further
        pos = close + 1
    return segments


def _int_key(key: str) -> int | None:
    """The integer PHP would use for `key` as an array key, when it is a non-negative one."""
    if (
        key.isascii()
        and key.isdigit()
        and len(key) <= _MAX_INT_KEY_LEN
        and (key == "0" or key[0] != "0")
    ):
        return int(key)
    return None


def _next_index(node: _Node, counters: dict[int, int]) -> str:
    """PHP's `$a[] = ...`: one past the largest integer key so far (0 for none)."""
    nxt = counters.get(id(node))
    if nxt is None:
        # Computed once per container, then kept current by _note_key, so appends stay O(1).
        nxt = max((k + 1 for k in map(_int_key, node) if k is not None), default=0)
    counters[id(node)] = nxt + 1
    return str(nxt)


def _note_key(node: _Node, key: str, counters: dict[int, int]) -> None:
    nxt = counters.get(id(node))
    if nxt is not None:
        k = _int_key(key)
        if k is not None and k >= nxt:
            counters[id(node)] = k + 1


def _store(
    root: _Node,
    base: str,
    segments: tuple[str, ...],
    value: str,
    created: list[tuple[_Node, str, _Node]],
    counters: dict[int, int],
) -> None:
    node = root
    key = base
    for segment in segments:
        child = node.get(key)
        if type(child) is not dict:
            # A scalar (or nothing) sits where an array is needed: PHP replaces it.
            child = {}
            node[key] = child
            created.append((node, key, child))
        node = child
        if segment:
            key = segment
            if counters:
                _note_key(node, key, counters)
        else:
            key = _next_index(node, counters)
    node[key] = value


def _convert_lists(created: list[tuple[_Node, str, _Node]]) -> None:
    """Turn every container keyed exactly "0".."n-1" into a list, children before parents.

    Containers are created after their parents, so walking the creation log backwards visits
    children first without recursion. Containers replaced by a later field are skipped by the
    identity check.
    """
    for parent, key, node in reversed(created):
        if parent.get(key) is not node or "0" not in node:
            continue
        try:
            parent[key] = [node[str(i)] for i in range(len(node))]
        except KeyError:
            continue
