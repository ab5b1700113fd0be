"""`GET /api/v4/events` of the fake: what happened to entities, newest first.

The fake records an event whenever a test deletes or restores an entity
(`lead_deleted`, `contact_restored`, …) or moves a lead to another stage or pipeline
(`lead_status_changed`, through `update_lead` and so through every control path that
edits a lead); `record()` adds any other event by hand. Query
forms accepted, as amoCRM documents them (old and new):

    filter[type][]=lead_deleted  filter[type][0]=…  filter[type]=lead_deleted,contact_deleted
    filter[entity][]=lead        filter[entity]=lead,contact
    filter[entity_id][]=…        (≤ 10 ids, needs exactly one filter[entity])
    filter[created_at][from]=…&filter[created_at][to]=…   filter[created_at]=N (= from)
    filter[created_at]=from,to   (the older comma form)
    page, limit (≤ 100: the amoCRM docs' limit; more → 422)

An empty page is `204 No Content`, like every amoCRM list.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amosync.testing.fake_errors import json_response, problem, validation_error
from amosync.testing.fake_query import QueryError, page_href

MAX_EVENTS_LIMIT = 100
DEFAULT_EVENTS_LIMIT = 50
MAX_ENTITY_IDS = 10
# The entity kind of a list endpoint → its name in events (`entity_type`, `filter[entity]`).
EVENT_ENTITY = {"leads": "lead", "contacts": "contact", "companies": "company"}

_LIST_KEY = re.compile(r"^filter\[(type|entity|entity_id)\](\[\d*\])?$")
_CREATED_KEY = re.compile(r"^filter\[created_at\](\[(from|to)\])?$")


@dataclass
class FakeEventLog:
    """Events of the fake account, oldest first. Thread-safe."""

    items: list[dict[str, Any]] = field(default_factory=list)
    # Which `filter[created_at]` forms the account accepts (amoCRM's docs show two and do
    # not say which the real API takes): "brackets" ([from]/[to]), "comma" (from,to),
    # "single" (one timestamp).
    # A form left out is refused with 400, to test a client's fallback.
    created_at_forms: frozenset[str] = frozenset({"brackets", "comma", "single"})
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _seq: int = field(default=0, init=False, repr=False)

    def record(
        self,
        type: str,
        entity_type: str,
        entity_id: int,
        created_at: int,
        *,
        account_id: int,
        created_by: int = 0,
        value_after: list[dict[str, Any]] | None = None,
        value_before: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            self._seq += 1
            # ULID-like: 26 lowercase characters, sortable by time.
            event_id = f"{created_at * 1000:010x}{self._seq:016x}"[-26:]
            event = {
                "id": event_id,
                "type": type,
                "entity_id": entity_id,
                "entity_type": entity_type,
                "created_by": created_by,
                "created_at": created_at,
                "value_after": value_after or [],
                "value_before": value_before or [],
                "account_id": account_id,
            }
            self.items.append(event)
            return dict(event)

    def entity_trashed(
        self, kind: str, entity_id: int, deleted: bool, at: int, account_id: int, by: int
    ) -> None:
        """A test deleted or restored an entity: amoCRM writes `<kind>_deleted|restored`."""
        name = EVENT_ENTITY[kind]
        action = "deleted" if deleted else "restored"
        self.record(f"{name}_{action}", name, entity_id, at, account_id=account_id, created_by=by)

    def stage_changed(
        self, lead: dict[str, Any], old_status: int, old_pipeline: int, account_id: int
    ) -> None:
        """A lead moved: amoCRM writes `lead_status_changed` at the edit's time, by its
        author, with the stage before and after as `[{"lead_status": {id, pipeline_id}}]`."""

        def stage(status_id: int, pipeline_id: int) -> list[dict[str, Any]]:
            return [{"lead_status": {"id": status_id, "pipeline_id": pipeline_id}}]

        self.record(
            "lead_status_changed",
            "lead",
            lead["id"],
            lead["updated_at"],
            account_id=account_id,
            created_by=lead["updated_by"],
            value_after=stage(lead["status_id"], lead["pipeline_id"]),
            value_before=stage(old_status, old_pipeline),
        )

    def select(self, query: EventsQuery) -> list[dict[str, Any]]:
        with self.lock:
            rows = [dict(e) for e in self.items if query.matches(e)]
        # Newest first, as the account's event feed shows them (ids as text: a test may
        # plant events with odd ids).
        rows.sort(key=lambda e: (e["created_at"], str(e["id"])), reverse=True)
        return rows


@dataclass(frozen=True)
class EventsQuery:
    pairs: tuple[tuple[str, str], ...]
    types: frozenset[str] | None = None
    entities: frozenset[str] | None = None
    entity_ids: frozenset[int] | None = None
    created_from: int | None = None
    created_to: int | None = None
    created_at_forms: frozenset[str] = frozenset()  # the forms this query used
    page: int = 1
    limit: int = DEFAULT_EVENTS_LIMIT

    def matches(self, event: dict[str, Any]) -> bool:
        at = event["created_at"]
        return (
            (self.types is None or event["type"] in self.types)
            and (self.entities is None or event["entity_type"] in self.entities)
            and (self.entity_ids is None or event["entity_id"] in self.entity_ids)
            and (self.created_from is None or at >= self.created_from)
            and (self.created_to is None or at <= self.created_to)
        )


def parse_events_query(raw: str) -> EventsQuery:
    """Read an events query string; raises QueryError where amoCRM would refuse it."""
    pairs = tuple(parse_qsl(raw, keep_blank_values=True))
    lists: dict[str, set[str]] = {}
    created: dict[str, int] = {}
    forms: set[str] = set()
    page, limit = 1, DEFAULT_EVENTS_LIMIT
    for key, value in pairs:
        if match := _LIST_KEY.match(key):
            # The bare form takes a comma list; `[]`/`[n]` forms repeat the key.
            parts = value.split(",") if match[2] is None else [value]
            lists.setdefault(match[1], set()).update(p.strip() for p in parts if p.strip())
        elif match := _CREATED_KEY.match(key):
            if match[2] is not None:
                created[match[2]] = _int(key, value)
                forms.add("brackets")
            elif "," in value:
                low, _, high = value.partition(",")
                created["from"], created["to"] = _int(key, low), _int(key, high)
                forms.add("comma")
            else:
                created["from"] = _int(key, value)  # one timestamp = "created after"
                forms.add("single")
        elif key == "page":
            page = _int(key, value)
        elif key == "limit":
            limit = _int(key, value)
    if limit > MAX_EVENTS_LIMIT:
        raise QueryError(422, "limit", f"Limit {MAX_EVENTS_LIMIT} per page")
    if limit < 1 or page < 1:
        raise QueryError(400, "limit" if limit < 1 else "page", "This value should be positive.")
    ids = lists.get("entity_id")
    entities = lists.get("entity")
    _check_entity_ids(ids, entities)
    return EventsQuery(
        pairs=pairs,
        types=frozenset(lists["type"]) if "type" in lists else None,
        entities=frozenset(entities) if entities is not None else None,
        entity_ids=frozenset(_int("filter[entity_id]", i) for i in ids) if ids else None,
        created_from=created.get("from"),
        created_to=created.get("to"),
        created_at_forms=frozenset(forms),
        page=page,
        limit=limit,
    )


def _check_entity_ids(ids: set[str] | None, entities: set[str] | None) -> None:
    if ids is None:
        return
    if entities is None or len(entities) != 1:
        raise QueryError(400, "filter[entity_id]", "Exactly one filter[entity] is required.")
    if len(ids) > MAX_ENTITY_IDS:
        raise QueryError(
            400, "filter[entity_id]", "This collection should contain 10 elements or less."
        )


def events_route(log: FakeEventLog) -> Route:
    return Route("/api/v4/events", _events_endpoint(log), methods=["GET"])


def _events_endpoint(log: FakeEventLog) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            query = parse_events_query(request.url.query)
        except QueryError as error:
            if error.status == 400:
                return validation_error(error.path, error.detail)
            return problem(error.status, error.detail)
        refused = sorted(query.created_at_forms - log.created_at_forms)
        if refused:
            return validation_error("filter[created_at]", f"Unsupported form: {refused[0]}")
        rows = log.select(query)
        start = (query.page - 1) * query.limit
        chunk = rows[start : start + query.limit]
        if not chunk:
            return Response(status_code=204)
        origin = str(request.base_url).rstrip("/")
        here = f"{origin}{request.url.path}"
        links = {"self": {"href": page_href(here, query.pairs, query.page, query.limit)}}
        if start + query.limit < len(rows):
            links["next"] = {"href": page_href(here, query.pairs, query.page + 1, query.limit)}
        items = [_render(event, origin) for event in chunk]
        return json_response({"_page": query.page, "_links": links, "_embedded": {"events": items}})

    return endpoint


def _render(event: dict[str, Any], origin: str) -> dict[str, Any]:
    plural = {v: k for k, v in EVENT_ENTITY.items()}.get(event["entity_type"], event["entity_type"])
    entity_href = f"{origin}/api/v4/{plural}/{event['entity_id']}"
    return {
        **event,
        "_links": {"self": {"href": f"{origin}/api/v4/events/{event['id']}"}},
        "_embedded": {
            "entity": {"id": event["entity_id"], "_links": {"self": {"href": entity_href}}}
        },
    }


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise QueryError(400, key, "This value should be of type int.") from None
