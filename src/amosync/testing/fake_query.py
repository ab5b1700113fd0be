"""Parsing the PHP-style query strings of list endpoints (`filter[id][]=1&order[id]=asc`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from amosync.testing.fake_render import StoredEntity

MAX_LIMIT = 250
DEFAULT_LIMIT = 50

# `filter[id]`, `filter[id][]` and `filter[id][3]` all name the same list.
_ID_KEY = re.compile(r"^filter\[id\](\[\d*\])?$")
_RANGE_KEY = re.compile(r"^filter\[(updated_at|created_at)\](\[(from|to)\])?$")
_ORDER_KEY = re.compile(r"^order\[(updated_at|created_at|id)\]$")


class QueryError(Exception):
    """A parameter the real API would reject; `status` is 400 or 422."""

    def __init__(self, status: int, path: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class ListQuery:
    """The parts of a list request the fake understands."""

    pairs: tuple[tuple[str, str], ...]
    ids: frozenset[int] | None = None
    # field -> (from, to), both inclusive; None = open end.
    ranges: tuple[tuple[str, int | None, int | None], ...] = ()
    order_key: str = "id"
    descending: bool = False
    with_: frozenset[str] = frozenset()
    text: str | None = None
    page: int = 1
    limit: int = DEFAULT_LIMIT


def parse_list_query(raw: str) -> ListQuery:
    """Read a list request's query string; raises QueryError on what amoCRM rejects."""
    pairs = tuple(parse_qsl(raw, keep_blank_values=True))
    ids: set[int] | None = None
    ranges: dict[str, list[int | None]] = {}
    order: tuple[str, bool] | None = None
    with_: set[str] = set()
    text: str | None = None
    page, limit = 1, DEFAULT_LIMIT
    for key, value in pairs:
        if _ID_KEY.match(key):
            ids = (ids or set()) | {_int(key, value)}
        elif match := _RANGE_KEY.match(key):
            bounds = ranges.setdefault(match[1], [None, None])
            # A bare `filter[updated_at]=N` means "from N", as the docs say.
            bounds[1 if match[3] == "to" else 0] = _int(key, value)
        elif match := _ORDER_KEY.match(key):
            if value not in ("asc", "desc"):
                raise QueryError(400, key, "The value you selected is not a valid choice.")
            order = order or (match[1], value == "desc")
        elif key == "with":
            with_.update(part.strip() for part in value.split(",") if part.strip())
        elif key == "query":
            text = value or None
        elif key == "page":
            page = _int(key, value)
        elif key == "limit":
            limit = _int(key, value)
    if limit > MAX_LIMIT:
        raise QueryError(422, "limit", f"Limit {MAX_LIMIT} per page")
    if limit < 1 or page < 1:
        raise QueryError(400, "limit" if limit < 1 else "page", "This value should be positive.")
    order_key, descending = order or ("id", False)
    return ListQuery(
        pairs=pairs,
        ids=frozenset(ids) if ids is not None else None,
        ranges=tuple((name, lo, hi) for name, (lo, hi) in ranges.items()),
        order_key=order_key,
        descending=descending,
        with_=frozenset(with_),
        text=text,
        page=page,
        limit=limit,
    )


def parse_with(raw: str) -> frozenset[str]:
    """Only the `with` list, for single-entity requests."""
    return frozenset(
        part.strip()
        for key, value in parse_qsl(raw, keep_blank_values=True)
        if key == "with"
        for part in value.split(",")
        if part.strip()
    )


def page_href(base: str, pairs: tuple[tuple[str, str], ...], page: int, limit: int) -> str:
    """The request's own query with `page`/`limit` set, as real `_links.self/next` show it."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key, value in pairs:
        if key in ("page", "limit"):
            if key not in seen:
                out.append((key, str(page if key == "page" else limit)))
                seen.add(key)
            continue
        out.append((key, value))
    out.extend(
        (key, str(page if key == "page" else limit)) for key in ("page", "limit") if key not in seen
    )
    # Brackets stay readable, like the PHP library sends them and real links echo them.
    return f"{base}?{urlencode(out, safe='[],')}"


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise QueryError(400, key, "This value should be of type int.") from None


def apply_query(entities: Iterable[StoredEntity], query: ListQuery) -> list[StoredEntity]:
    """Filter and sort; `with=only_deleted` selects the trash instead of live entities."""
    only_deleted = "only_deleted" in query.with_
    rows = [e for e in entities if e.is_deleted == only_deleted]
    if query.ids is not None:
        rows = [e for e in rows if e.id in query.ids]
    for name, low, high in query.ranges:
        rows = [e for e in rows if _within(e.fields.get(name), low, high)]
    if query.text is not None:
        needle = query.text.casefold()
        rows = [e for e in rows if needle in _searchable(e)]
    # Ties on the sort key fall back to id so pages never overlap or skip.
    rows.sort(key=lambda e: (e.fields[query.order_key] or 0, e.id), reverse=query.descending)
    return rows


def _within(value: Any, low: int | None, high: int | None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _searchable(entity: StoredEntity) -> str:
    parts = [str(entity.fields.get("name") or "")]
    for custom in entity.fields.get("custom_fields_values") or []:
        parts.extend(str(v.get("value", "")) for v in custom.get("values", []))
    return " ".join(parts).casefold()
