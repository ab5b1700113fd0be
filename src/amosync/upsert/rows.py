"""Table rows from the record dataclasses of `core.records`, built for the hot path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any


def record_rows(records: Sequence[object], now: datetime) -> list[dict[str, Any]]:
    """One row per record (all of one dataclass type), stamped `synced_at = now`.

    Shallow on purpose: `dataclasses.asdict` deep-copies every list and dict of `raw` and
    `custom_fields`, which cost more than the rest of the row; the rows are only serialized
    into the statement, never changed.
    """
    if not records:
        return []
    names, values = _accessors(type(records[0]))
    return [dict(zip(names, values(r), strict=True), synced_at=now) for r in records]


_Accessors = tuple[tuple[str, ...], Callable[[object], tuple[Any, ...]]]
_ACCESSORS: dict[type, _Accessors] = {}


def _accessors(record_type: type) -> _Accessors:
    """The field names of a record type and one getter returning all their values."""
    known = _ACCESSORS.get(record_type)
    if known is None:
        names = tuple(f.name for f in fields(record_type))
        if len(names) == 1:  # attrgetter of one name returns the value, not a 1-tuple
            known = names, lambda record: (getattr(record, names[0]),)
        else:
            known = names, attrgetter(*names)
        _ACCESSORS[record_type] = known
    return known
