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
from collections.abc import Sequence
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
# Stand-ins for the raw `&` and `=` separators in the exact path, whose fields are decoded one by
# one: 0xFE/0xFF never occur in UTF-8.
_AMP = b"\xfe"
_EQ = b"\xff"
# The fast path maps, in one C-level pass: raw `&` and `=` to SEP (a valid UTF-8 byte, so that the
# whole body can be decoded to one str), `%` to `=` for a2b_qp, and `+` to a space.
_SEP = "\x01"
_FAST_MAP = bytes.maketrans(b"&=%+", b"\x01\x01= ")
# ...and keeps, in another, only the bytes whose positions it must know about.
_SPECIAL = b"&=%\r\n"
_NOT_SPECIAL = bytes(sorted(set(range(256)) - set(_SPECIAL)))

_Node: TypeAlias = dict[str, Any]
# A parsed field name: the top-level name and its bracket segments ("" = append).
_Name: TypeAlias = tuple[str, tuple[str, ...]]
# The containers on a field's path, from the root's child down, each as (its parent's key in the
# per-body container table, its key in its parent, its own key in that table).
_Chain: TypeAlias = tuple[tuple[str, str, str], ...]
# Where the fast path stores a field: its container's key in that table, the chain and the key.
_Plan: TypeAlias = tuple[str | None, _Chain, str]
# Containers created while decoding, as (parent, key, container), in creation order.
_Created: TypeAlias = list[tuple[_Node, str, _Node]]

# amoCRM sends the same few hundred field names over and over, so parsing each name once and
# keying the result by its raw bytes saves most of the per-field work. Long names are not cached,
# and the cache is emptied when full, so hostile bodies cannot grow it without bound.
_NAME_CACHE: dict[bytes, _Name | None] = {}
_CACHE_SIZE = 4096
_CACHE_KEY_MAX = 256
_MISS: _Name = ("", ())
# The fast path's plans, by decoded name, one table per max_depth (a plan is only made for a name
# within that depth, so no per-field depth check is needed). Bounded like _NAME_CACHE.
_PLANS: dict[int, dict[str, _Plan]] = {}
_PLAN_TABLES_MAX = 8
# The keys of a short list, ready-made for _convert_lists.
_INDEX_KEYS = tuple(map(str, range(64)))
_ROOT_KEY = ""  # container keys of nested containers are never empty: a base name never is
# Two marker plans; their leaves differ so that they are distinct objects (equal tuple constants
# may be merged into one). Neither has a container, so both miss in the container table.
_SKIP: _Plan = (None, (), "skip")  # PHP ignores the field
_APPEND: _Plan = (None, (), "append")  # `[]` in the name: only the exact path numbers appends


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
    # The body's separators and other special bytes, in order: a single C-level pass that also
    # counts the fields, so an oversized body is refused before any allocation proportional to
    # its field count.
    specials = body.translate(None, _NOT_SPECIAL)
    amps = specials.count(b"&")
    if amps >= max_fields:
        raise FormDecodeError(f"more than {max_fields} fields")
    root = _fast_tree(body, specials, amps, max_depth)
    if root is None:
        root = _exact_tree(body, max_depth)
    if not root:
        raise FormDecodeError("no usable fields")
    return root


# --- fast path: the usual body, decoded to one str in a few C-level passes --------------------


def _fast_fields(body: bytes, specials: bytes, amps: int) -> list[str] | None:
    """Names and values, alternating, or None when the exact path must decide.

    Percent-decoding and UTF-8 decoding the whole body at once leaves only the tree to build in
    Python. Only the usual shape is taken: every field is `name=value` with no other raw `=`,
    every `%` starts a `%XX` escape, and nothing decodes to the stand-in separator. Anything
    else, invalid UTF-8 included, is left to the exact path (which also finds the first error,
    as it always has).
    """
    percents = specials.count(b"%")
    if specials.replace(b"%", b"") != b"=&" * amps + b"=":
        return None  # not strictly `name=value` fields, or a raw CR/LF (see below)
    data = body.translate(_FAST_MAP)
    if percents:
        # Quoted-printable decoding is the same `=XX` -> byte step, in C (urllib's decoder loops
        # in Python over every escape, and amoCRM escapes every bracket and Cyrillic byte). Its
        # other rules shorten the data by less than two bytes per `=`, except soft line breaks,
        # which need a raw CR or LF: so without those, the length says every `%` was an escape.
        data = a2b_qp(data)
        if len(data) != len(body) - 2 * percents:
            return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = text.split(_SEP)
    if len(parts) != 2 * amps + 2:
        return None  # a `%01` or raw 0x01 in the body
    return parts


def _fast_tree(body: bytes, specials: bytes, amps: int, max_depth: int) -> _Node | None:
    """The decoded tree, or None when the body needs the exact path."""
    parts = _fast_fields(body, specials, amps)
    if parts is None:
        return None
    return _build(parts[::2], parts[1::2], max_depth)


def _build(names: list[str], values: Sequence[Any], max_depth: int) -> _Node | None:
    """The tree of these fields, or None when the body needs the exact path.

    Each container is looked up by its path in a per-body table instead of being walked to from
    the root, so a field costs a few dict operations. That shortcut is only wrong when a later
    field replaces a container with a string (`a[b]=1&a=2`), which leaves the container detached;
    such bodies, and appends (`a[]`), are left to the exact path.
    """
    plans = _PLANS.get(max_depth)
    if plans is None:
        if len(_PLANS) >= _PLAN_TABLES_MAX:
            _PLANS.clear()
        plans = _PLANS[max_depth] = {}
    root: _Node = {}
    nodes: dict[str | None, _Node] = {_ROOT_KEY: root}
    created: _Created = []
    skipped = 0
    for name, plan, value in zip(names, map(plans.get, names), values, strict=True):
        if plan is None:
            plan = _learn(plans, name, max_depth)
        key, chain, leaf = plan
        node = nodes.get(key)
        if node is None:
            if plan is _SKIP:
                skipped += 1
                continue
            if plan is _APPEND:
                return None
            node = _open(chain, nodes, created)
        node[leaf] = value
    # Every field and every container but the root adds one entry to its container, unless it
    # replaced an earlier one: only then can a container have been replaced by a string.
    if sum(map(len, nodes.values())) != len(names) - skipped + len(created):
        return None
    _convert_lists(created)
    return root


def _learn(plans: dict[str, _Plan], name: str, max_depth: int) -> _Plan:
    split = _split_name(name, max_depth)
    if split is None:
        plan = _SKIP
    elif "" in split[1]:
        plan = _APPEND
    else:
        path = (split[0], *split[1])
        # NUL cannot occur in a name, so joining the path with it gives a unique key.
        keys = [_ROOT_KEY, *("\x00".join(path[: i + 1]) for i in range(len(path) - 1))]
        chain = tuple(zip(keys, path, keys[1:], strict=False))  # the root has no parent
        plan = (keys[-1], chain, path[-1])
    if len(name) <= _CACHE_KEY_MAX:
        if len(plans) >= _CACHE_SIZE:
            plans.clear()
        plans[name] = plan
    return plan


def _open(chain: _Chain, nodes: dict[str | None, _Node], created: _Created) -> _Node:
    """Create the container at the end of `chain` (known to be missing) and its missing parents.

    A missing container's slot holds a string or nothing, never a container: every container is
    in `nodes` from its creation. PHP replaces such a string with the new array.
    """
    start = len(chain) - 1
    parent = nodes.get(chain[start][0])
    while parent is None:
        start -= 1
        parent = nodes.get(chain[start][0])
    for _, segment, key in chain[start:]:
        node: _Node = {}
        parent[segment] = node
        created.append((parent, segment, node))
        nodes[key] = parent = node
    return parent


# --- exact path: field by field, for appends, odd bodies and finding the first error ----------


def _exact_tree(body: bytes, max_depth: int) -> _Node:
    data = _percent_decode(body)
    root: _Node = {}
    created: _Created = []
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
        # See _fast_fields; with no raw `=` left and every `%` starting a valid escape, no other
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
    created: _Created,
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


def _convert_lists(created: _Created) -> None:
    """Turn every container keyed exactly "0".."n-1" into a list, children before parents.

    Containers are created after their parents, so walking the creation log backwards visits
    children first without recursion. Containers replaced by a later field are skipped by the
    identity check.
    """
    for parent, key, node in reversed(created):
        if "0" not in node or parent[key] is not node:
            continue
        size = len(node)
        keys = _INDEX_KEYS[:size] if size <= len(_INDEX_KEYS) else map(str, range(size))
        try:
            parent[key] = list(map(node.__getitem__, keys))
        except KeyError:
            continue
