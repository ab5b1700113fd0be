"""Pure: API v4 reference objects (PROTOCOL §7a) as rows of the reference tables.

Like core/mapping.py, every field but the key is read defensively; an object without a
usable id is skipped (it cannot be stored), never an error that stops the refresh.
"""

from __future__ import annotations

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


def pipeline_rows(pipelines: list[dict[str, Any]]) -> tuple[list[Row], list[Row]]:
    """(pipelines, stages) from `GET /api/v4/leads/pipelines`'s `_embedded.pipelines`."""
    pipes: list[Row] = []
    stages: list[Row] = []
    for obj in pipelines:
        pipeline_id = int_id(obj.get("id"))
        if pipeline_id is None:
            continue
        pipes.append(
            {
                "id": pipeline_id,
                "name": _str_or_none(obj.get("name")),
                "sort": _int_or_none(obj.get("sort")),
                "is_main": obj.get("is_main") is True,
                "is_archive": obj.get("is_archive") is True,
                "raw": obj,
            }
        )
        for status in _embedded(obj, "statuses"):
            status_id = int_id(status.get("id"))
            if status_id is None:
                continue
            stages.append(
                {
                    # The pipeline that lists it: 142/143 repeat in every pipeline.
                    "pipeline_id": pipeline_id,
                    "id": status_id,
                    "name": _str_or_none(status.get("name")),
                    "sort": _int_or_none(status.get("sort")),
                    "color": _str_or_none(status.get("color")),
                    "type": _int_or_none(status.get("type")),
                    "raw": status,
                }
            )
    return pipes, stages


def user_rows(users: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for obj in users:
        user_id = int_id(obj.get("id"))
        if user_id is None:
            continue
        rights = obj.get("rights")
        rights = rights if isinstance(rights, dict) else {}
        rows.append(
            {
                "id": user_id,
                "name": _str_or_none(obj.get("name")),
                "email": _str_or_none(obj.get("email")),
                "is_active": _bool(rights.get("is_active")),
                "is_admin": _bool(rights.get("is_admin")),
                "raw": obj,
            }
        )
    return rows


def field_rows(entity_type: str, fields: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for obj in fields:
        field_id = int_id(obj.get("id"))
        if field_id is None:
            continue
        enums = obj.get("enums")
        rows.append(
            {
                "entity_type": entity_type,
                "id": field_id,
                "name": _str_or_none(obj.get("name")),
                "code": _str_or_none(obj.get("code")),
                "type": _str_or_none(obj.get("type")),
                "sort": _int_or_none(obj.get("sort")),
                "enums": enums if isinstance(enums, list) else None,
                "raw": obj,
            }
        )
    return rows


def loss_reason_rows(reasons: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for obj in reasons:
        reason_id = int_id(obj.get("id"))
        if reason_id is None:
            continue
        rows.append(
            {
                "id": reason_id,
                "name": _str_or_none(obj.get("name")),
                "sort": _int_or_none(obj.get("sort")),
                "raw": obj,
            }
        )
    return rows
