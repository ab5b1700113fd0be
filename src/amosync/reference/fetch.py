"""Reading the reference data from amoCRM: 6 requests for a usual account.

`GET /api/v4/leads/pipelines` (one answer, stages inside), `/api/v4/users` (limit 250),
`/api/v4/{leads,contacts,companies}/custom_fields` (limit 50: the docs give both 50 and 250,
so pages are followed until there is no `next` link) and `/api/v4/leads/loss_reasons`.
Users are admin-only: a 403 there means "no user names", not a failure. Loss reasons are
newer than some accounts: a 404 there means "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amosync.amocrm.client import AmoClient, Params
from amosync.core.mapping import embedded_items
from amosync.errors import RequestRejected
from amosync.reference.rows import (
    ENTITY_TYPES,
    Row,
    field_rows,
    loss_reason_rows,
    pipeline_rows,
    user_rows,
)

USERS_LIMIT = 250
FIELDS_LIMIT = 50
# Bounds what a misbehaving answer (a `next` link forever) can cost: 50 × 250 users.
MAX_PAGES = 50


@dataclass
class Fetched:
    pipelines: list[Row] = field(default_factory=list)
    statuses: list[Row] = field(default_factory=list)
    users: list[Row] | None = None  # None: the token's user is no admin (403)
    fields: dict[str, list[Row]] = field(default_factory=dict)
    loss_reasons: list[Row] | None = None  # None: the account has no such endpoint (404)


async def _all_pages(
    client: AmoClient, path: str, key: str, limit: int, *, admin_only: bool = False
) -> list[Row]:
    items: list[Row] = []
    for page in range(1, MAX_PAGES + 1):
        params: Params = [("page", page), ("limit", limit)]
        body = await client.get_json(path, params, admin_only=admin_only)
        found = embedded_items(body, key)
        items.extend(found)
        links = body.get("_links") if body is not None else None
        if not found or not (isinstance(links, dict) and links.get("next")):
            break
    return items


async def fetch_reference(client: AmoClient) -> Fetched:
    fetched = Fetched()
    body = await client.get_json("/api/v4/leads/pipelines")
    fetched.pipelines, fetched.statuses = pipeline_rows(embedded_items(body, "pipelines"))
    try:
        users = await _all_pages(client, "/api/v4/users", "users", USERS_LIMIT, admin_only=True)
        fetched.users = user_rows(users)
    except RequestRejected as exc:
        if exc.status != 403:
            raise
    for entity in ENTITY_TYPES:
        path = f"/api/v4/{entity}/custom_fields"
        fields = await _all_pages(client, path, "custom_fields", FIELDS_LIMIT)
        fetched.fields[entity] = field_rows(entity, fields)
    try:
        body = await client.get_json("/api/v4/leads/loss_reasons")
        fetched.loss_reasons = loss_reason_rows(embedded_items(body, "loss_reasons"))
    except RequestRejected as exc:
        if exc.status != 404:
            raise
    return fetched
