"""Pure: API v4 reference objects (PROTOCOL §7a) as rows of the reference tables.

Like core/mapping.py, every field but the key is read defensively; an object without a
usable id is skipped (it cannot be stored), never an error that stops the refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from amosync.core.mapping import int_id

Row = dict[str, Any]
ENTITY_TYPES = ("leads", "contacts", "companies")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _embedded(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    embedded = obj.get("_embedded")
    items = embedded.get(key) if isinstance(embedded, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _rows(objects: list[dict[str, Any]], row: Callable[[int, dict[str, Any]], Row]) -> list[Row]:
    """`row(id, obj)` of each object with a usable id; the others are skipped."""
    return [row(key, obj) for obj in objects if (key := int_id(obj.get("id"))) is not None]


def pipeline_rows(pipelines: list[dict[str, Any]]) -> tuple[list[Row], list[Row]]:
    """(pipelines, stages) from `GET /api/v4/leads/pipelines`'s `_embedded.pipelines`."""
    pipes = _rows(pipelines, _pipeline_row)
    stages = [
        stage
        for pipe in pipes
        for stage in _rows(_embedded(pipe["raw"], "statuses"), partial(_stage_row, pipe["id"]))
    ]
    return pipes, stages


def _pipeline_row(pipeline_id: int, obj: dict[str, Any]) -> Row:
    return {
        "id": pipeline_id,
        "name": _str_or_none(obj.get("name")),
        "sort": _int_or_none(obj.get("sort")),
        "is_main": obj.get("is_main") is True,
        "is_archive": obj.get("is_archive") is True,
        "raw": obj,
    }


def _stage_row(pipeline_id: int, status_id: int, status: dict[str, Any]) -> Row:
    return {
        # The pipeline that lists it: 142/143 repeat in every pipeline.
        "pipeline_id": pipeline_id,
        "id": status_id,
        "name": _str_or_none(status.get("name")),
        "sort": _int_or_none(status.get("sort")),
        "color": _str_or_none(status.get("color")),
        "type": _int_or_none(status.get("type")),
        "raw": status,
    }


def user_rows(users: list[dict[str, Any]]) -> list[Row]:
    return _rows(users, _user_row)


def _user_row(user_id: int, obj: dict[str, Any]) -> Row:
    rights = obj.get("rights")
    rights = rights if isinstance(rights, dict) else {}
    return {
        "id": user_id,
        "name": _str_or_none(obj.get("name")),
        "email": _str_or_none(obj.get("email")),
        "is_active": _bool(rights.get("is_active")),
        "is_admin": _bool(rights.get("is_admin")),
        "raw": obj,
    }


def field_rows(entity_type: str, fields: list[dict[str, Any]]) -> list[Row]:
    return _rows(fields, partial(_field_row, entity_type))


def _field_row(entity_type: str, field_id: int, obj: dict[str, Any]) -> Row:
    enums = obj.get("enums")
    return {
        "entity_type": entity_type,
        "id": field_id,
        "name": _str_or_none(obj.get("name")),
        "code": _str_or_none(obj.get("code")),
        "type": _str_or_none(obj.get("type")),
        "sort": _int_or_none(obj.get("sort")),
        "enums": enums if isinstance(enums, list) else None,
        "raw": obj,
    }


def loss_reason_rows(reasons: list[dict[str, Any]]) -> list[Row]:
    return _rows(reasons, _loss_reason_row)


def _loss_reason_row(reason_id: int, obj: dict[str, Any]) -> Row:
    return {
        "id": reason_id,
        "name": _str_or_none(obj.get("name")),
        "sort": _int_or_none(obj.get("sort")),
        "raw": obj,
    }
