"""Reference data of the fake account: pipelines with stages, users, custom-field
definitions of contacts and companies, loss reasons, and the endpoints that list them.

Shaped like the real API v4 answers (PROTOCOL §7a): pipelines are one unpaginated list with
the stages of each in `_embedded.statuses` (142 won and 143 lost in every pipeline); users
are paged (limit ≤ 250) and admin-only (`users_forbidden` answers 403 as for a non-admin
token); field definitions are paged (limit ≤ 50); loss reasons answer 404 when
`loss_reasons_missing` is set, as an older account may.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amosync.testing.fake_errors import json_response, problem, validation_error
from amosync.testing.fake_fields import (
    BIRTHDAY_FIELD_ID,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_PIPELINE_ID,
    DEFAULT_STATUS_ID,
    DEFAULT_USER_ID,
    EMAIL_FIELD_ID,
    PHONE_FIELD_ID,
    STATUS_LOST,
    STATUS_WON,
)

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

SECOND_PIPELINE_ID = 7000003
SECOND_STATUS_ID = 47000011
SECOND_USER_ID = 9000003
LOSS_REASON_ID = 5000001
USERS_MAX_LIMIT = 250
FIELDS_MAX_LIMIT = 50


def stage(
    pipeline_id: int, status_id: int, name: str, sort: int, color: str = "#99ccff", type_: int = 0
) -> dict[str, Any]:
    return {
        "id": status_id,
        "name": name,
        "sort": sort,
        "is_editable": status_id not in (STATUS_WON, STATUS_LOST),
        "pipeline_id": pipeline_id,
        "color": color,
        "type": type_,
        "account_id": DEFAULT_ACCOUNT_ID,
    }


def pipeline(
    pipeline_id: int, name: str, sort: int, stages: list[dict[str, Any]], *, is_main: bool = False
) -> dict[str, Any]:
    """A pipeline with its stages plus the system stages 142 and 143, as the API lists it."""
    statuses = [
        *stages,
        stage(pipeline_id, STATUS_WON, "Успешно реализовано", 10000, "#CCFF66"),
        stage(pipeline_id, STATUS_LOST, "Закрыто и не реализовано", 11000, "#D5D8DB"),
    ]
    return {
        "id": pipeline_id,
        "name": name,
        "sort": sort,
        "is_main": is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": DEFAULT_ACCOUNT_ID,
        "_embedded": {"statuses": statuses},
    }


def user(user_id: int, name: str, email: str, *, admin: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "name": name,
        "email": email,
        "lang": "ru",
        "rights": {"is_admin": admin, "is_free": False, "is_active": True, "group_id": None},
    }


def field_definition(
    entity: str,
    field_id: int,
    name: str,
    type_: str,
    *,
    code: str | None = None,
    sort: int = 500,
    enums: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": field_id,
        "name": name,
        "type": type_,
        "code": code,
        "sort": sort,
        "is_api_only": False,
        "enums": [
            {"id": field_id * 10 + n, "value": value, "sort": 500 + n}
            for n, value in enumerate(enums or [])
        ]
        or None,
        "group_id": None,
        "required_statuses": [],
        "entity_type": entity,
        "_links": {"self": {"href": f"/api/v4/{entity}/custom_fields/{field_id}"}},
    }


def loss_reason(reason_id: int, name: str, sort: int) -> dict[str, Any]:
    return {"id": reason_id, "name": name, "sort": sort, "created_at": 1700000000}


def _person_fields(entity: str) -> list[dict[str, Any]]:
    return [
        field_definition(
            entity,
            PHONE_FIELD_ID,
            "Телефон",
            "multitext",
            code="PHONE",
            sort=4,
            enums=["WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"],
        ),
        field_definition(
            entity,
            EMAIL_FIELD_ID,
            "Email",
            "multitext",
            code="EMAIL",
            sort=6,
            enums=["WORK", "PRIV", "OTHER"],
        ),
    ]


@dataclass(kw_only=True)
class FakeReference:
    """The account's reference data; tests edit the lists in place between requests."""

    pipelines: list[dict[str, Any]] = field(
        default_factory=lambda: [
            pipeline(
                DEFAULT_PIPELINE_ID,
                "Воронка",
                1,
                [
                    stage(DEFAULT_PIPELINE_ID, 47000000, "Неразобранное", 10, "#c1c1c1", 1),
                    stage(DEFAULT_PIPELINE_ID, DEFAULT_STATUS_ID, "Первичный контакт", 20),
                ],
                is_main=True,
            ),
            pipeline(
                SECOND_PIPELINE_ID,
                "Аренда",
                2,
                [stage(SECOND_PIPELINE_ID, SECOND_STATUS_ID, "Бронь", 20)],
            ),
        ]
    )
    users: list[dict[str, Any]] = field(
        default_factory=lambda: [
            user(DEFAULT_USER_ID, "Анна Админова", "anna@example.com", admin=True),
            user(SECOND_USER_ID, "Борис Менеджеров", "boris@example.com"),
        ]
    )
    # A non-admin token: `GET /api/v4/users` answers 403.
    users_forbidden: bool = False
    contact_custom_fields: list[dict[str, Any]] = field(
        default_factory=lambda: [
            *_person_fields("contacts"),
            field_definition("contacts", BIRTHDAY_FIELD_ID, "День рождения", "birthday", sort=8),
        ]
    )
    company_custom_fields: list[dict[str, Any]] = field(
        default_factory=lambda: _person_fields("companies")
    )
    loss_reasons: list[dict[str, Any]] = field(
        default_factory=lambda: [
            loss_reason(LOSS_REASON_ID, "Дорого", 1),
            loss_reason(LOSS_REASON_ID + 2, "Не дозвонились", 2),
        ]
    )
    # An older account: `GET /api/v4/leads/loss_reasons` answers 404.
    loss_reasons_missing: bool = False


def _paged(request: Request, items: list[dict[str, Any]], key: str, max_limit: int) -> Response:
    query = dict(parse_qsl(request.url.query))
    try:
        page = int(query.get("page", "1"))
        limit = int(query.get("limit", str(max_limit)))
    except ValueError:
        return validation_error("page", "page and limit must be integers")
    if page < 1 or not 1 <= limit <= max_limit:
        return validation_error("limit", f"limit must be 1..{max_limit}, page ≥ 1")
    chunk = items[(page - 1) * limit : page * limit]
    if not chunk:
        return Response(status_code=204)
    here = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    links = {"self": {"href": f"{here}?page={page}&limit={limit}"}}
    if page * limit < len(items):
        links["next"] = {"href": f"{here}?page={page + 1}&limit={limit}"}
    return json_response({"_page": page, "_links": links, "_embedded": {key: chunk}})


def reference_routes(state: FakeAmoState) -> list[Route]:
    async def pipelines(request: Request) -> Response:
        with state.lock:
            items = [dict(p) for p in state.reference.pipelines]
        return json_response({"_total_items": len(items), "_embedded": {"pipelines": items}})

    async def users(request: Request) -> Response:
        if state.reference.users_forbidden:
            return problem(403, "Access denied")
        with state.lock:
            items = [dict(u) for u in state.reference.users]
        return _paged(request, items, "users", USERS_MAX_LIMIT)

    def fields_of(entity: str) -> Any:
        async def endpoint(request: Request) -> Response:
            ref = state.reference
            people = entity == "contacts"
            source = ref.contact_custom_fields if people else ref.company_custom_fields
            with state.lock:
                items = [dict(f) for f in source]
            return _paged(request, items, "custom_fields", FIELDS_MAX_LIMIT)

        return endpoint

    async def loss_reasons(request: Request) -> Response:
        if state.reference.loss_reasons_missing:
            return problem(404, f"Cannot GET {request.url}")
        with state.lock:
            items = [dict(r) for r in state.reference.loss_reasons]
        return json_response({"_embedded": {"loss_reasons": items}})

    return [
        Route("/api/v4/leads/pipelines", pipelines, methods=["GET"]),
        Route("/api/v4/users", users, methods=["GET"]),
        Route("/api/v4/contacts/custom_fields", fields_of("contacts"), methods=["GET"]),
        Route("/api/v4/companies/custom_fields", fields_of("companies"), methods=["GET"]),
        Route("/api/v4/leads/loss_reasons", loss_reasons, methods=["GET"]),
    ]
