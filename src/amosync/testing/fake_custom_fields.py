"""`GET /api/v4/leads/custom_fields` of the fake: the account's lead field definitions.

`state.lead_custom_fields` holds them as the API returns them; by default the RentProg ID
text field (`RENTPROG_FIELD_ID`) and two ordinary ones. A test removes or renames the
RentProg field there to see `doctor` notice. Paged like the real endpoint (limit ≤ 50).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amosync.testing.fake_errors import json_response, validation_error
from amosync.testing.fake_fields import RENTPROG_FIELD_ID

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

MAX_LIMIT = 50


def lead_field(field_id: int, name: str, type_: str = "text", sort: int = 500) -> dict[str, Any]:
    """One lead custom field definition, shaped like the real API's."""
    return {
        "id": field_id,
        "name": name,
        "type": type_,
        "code": None,
        "sort": sort,
        "is_api_only": False,
        "enums": None,
        "group_id": None,
        "required_statuses": [],
        "is_deletable": True,
        "is_predefined": False,
        "entity_type": "leads",
        "remind": None,
        "_links": {"self": {"href": f"/api/v4/leads/custom_fields/{field_id}"}},
    }


def default_lead_fields() -> list[dict[str, Any]]:
    return [
        lead_field(700003, "Источник", sort=502),
        lead_field(RENTPROG_FIELD_ID, "RentProg ID", sort=504),
        lead_field(700005, "Дата выдачи", "date", sort=506),
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
