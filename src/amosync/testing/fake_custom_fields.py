"""`GET /api/v4/leads/custom_fields` of the fake: the account's lead field definitions.

`state.lead_custom_fields` holds them as the API returns them; by default the RentProg ID
text field (`RENTPROG_FIELD_ID`) and one field of every other type whose values the fake
renders (`fake_fields.field_value`). A test removes or renames the
RentProg field there to see `doctor` notice. Paged like the real endpoint (limit ≤ 50).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amosync.testing.fake_errors import json_response, validation_error
from amosync.testing.fake_fields import (
    CAR_CLASS_FIELD_ID,
    ISSUE_DATE_FIELD_ID,
    LINK_FIELD_ID,
    NOTE_FIELD_ID,
    OPTIONS_FIELD_ID,
    PAID_FIELD_ID,
    RENT_PRICE_FIELD_ID,
    RENTAL_START_FIELD_ID,
    RENTPROG_FIELD_ID,
    SOURCE_FIELD_ID,
)

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

MAX_LIMIT = 50


def lead_field(
    field_id: int,
    name: str,
    type_: str = "text",
    sort: int = 500,
    enums: list[str] | None = None,
) -> dict[str, Any]:
    """One lead custom field definition, shaped like the real API's (`enums`: the option
    labels of a list field, given ids `field_id * 10 + n`)."""
    return {
        "id": field_id,
        "name": name,
        "type": type_,
        "code": None,
        "sort": sort,
        "is_api_only": False,
        "enums": [
            {"id": field_id * 10 + n, "value": value, "sort": 500 + n}
            for n, value in enumerate(enums or [])
        ]
        or None,
        "group_id": None,
        "required_statuses": [],
        "is_deletable": True,
        "is_predefined": False,
        "entity_type": "leads",
        "remind": None,
        "_links": {"self": {"href": f"/api/v4/leads/custom_fields/{field_id}"}},
    }


def default_lead_fields() -> list[dict[str, Any]]:
    """A car-rental account's lead fields: one of every type the fake renders values of."""
    return [
        lead_field(SOURCE_FIELD_ID, "Источник", sort=502),
        lead_field(RENTPROG_FIELD_ID, "RentProg ID", sort=504),
        lead_field(ISSUE_DATE_FIELD_ID, "Дата выдачи", "date", sort=506),
        lead_field(RENT_PRICE_FIELD_ID, "Стоимость аренды", "numeric", sort=508),
        lead_field(PAID_FIELD_ID, "Оплачено", "checkbox", sort=510),
        lead_field(
            CAR_CLASS_FIELD_ID, "Класс авто", "select", 512, ["Эконом", "Комфорт", "Бизнес"]
        ),
        lead_field(
            OPTIONS_FIELD_ID,
            "Опции",
            "multiselect",
            514,
            ["Детское кресло", "GPS", "Второй водитель"],
        ),
        lead_field(RENTAL_START_FIELD_ID, "Начало аренды", "date_time", sort=516),
        lead_field(LINK_FIELD_ID, "Ссылка на договор", "url", sort=518),
        lead_field(NOTE_FIELD_ID, "Комментарий", "textarea", sort=520),
    ]


def lead_custom_fields_route(state: FakeAmoState) -> Route:
    async def endpoint(request: Request) -> Response:
        query = dict(parse_qsl(request.url.query))
        try:
            page = int(query.get("page", "1"))
            limit = int(query.get("limit", str(MAX_LIMIT)))
        except ValueError:
            return validation_error("page", "page and limit must be integers")
        if page < 1 or not 1 <= limit <= MAX_LIMIT:
            return validation_error("limit", f"limit must be 1..{MAX_LIMIT}, page ≥ 1")
        with state.lock:
            fields = [dict(f) for f in state.lead_custom_fields]
        chunk = fields[(page - 1) * limit : page * limit]
        if not chunk:
            return Response(status_code=204)
        here = f"{str(request.base_url).rstrip('/')}{request.url.path}"
        links = {"self": {"href": f"{here}?page={page}&limit={limit}"}}
        if page * limit < len(fields):
            links["next"] = {"href": f"{here}?page={page + 1}&limit={limit}"}
        body = {
            "_total_items": len(fields),
            "_page": page,
            "_page_count": -(-len(fields) // limit),
            "_links": links,
            "_embedded": {"custom_fields": chunk},
        }
        return json_response(body)

    return Route("/api/v4/leads/custom_fields", endpoint, methods=["GET"])
