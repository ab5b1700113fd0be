"""GET /openapi.json: the read API described in OpenAPI 3.1, written by hand.

Kept honest by tests: the document is validated, and schemathesis sends generated requests
to every operation and checks each answer against it (tests/integration/test_openapi.py).
Public, like any API documentation: it holds no data and no secret.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from amosync import __version__
from amosync.inbox.store import STATUSES
from amosync.web.params import MAX_ID
from amosync.web.reads import MAX_PAGE
from amosync.web.search import MAX_Q


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_TIMESTAMP = _nullable("string", format="date-time")
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
# Text filters refuse NUL with 400 (web/read_api.py text_param): PostgreSQL cannot compare it.
_NO_NUL = r"^[^\x00]*$"
_SOMETHING_BUT_NUL = r"^[^\x00]*[^\s\x00][^\x00]*$"  # and not only spaces
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _ok(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_AUTH_ERRORS = {
    "401": _error("Missing or wrong bearer token."),
    "403": _error(
        "No admin token configured and the client is not on loopback (127.0.0.1 or ::1, "
        "with a loopback Host and no proxy headers)."
    ),
    "429": _error(
        "Too many wrong tokens from this address (10 a minute); wait `Retry-After` seconds."
    ),
}
_BAD = {"400": _error("Invalid parameter; `error` says which and why.")}


def _id_param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"{what}; anything else is answered 400",
        "schema": _ID,
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_PERSON_PROPERTIES: dict[str, Any] = {
    "id": _ID,
    "name": _nullable("string"),
    "first_name": _nullable("string"),
    "last_name": _nullable("string"),
    "responsible_user_id": _nullable("integer"),
    "created_at": _TIMESTAMP,
    "updated_at": _TIMESTAMP,
    "is_deleted": {"type": "boolean"},
    "phones": {"type": "array", "items": {"type": "string"}},
    "emails": {"type": "array", "items": {"type": "string"}},
    "custom_fields": {"type": "array", "description": "amoCRM `custom_fields_values`, as is."},
    "synced_at": _TIMESTAMP,
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _named(description: str, **extra: Any) -> dict[str, Any]:
    """An id with the name the reference tables give it (null when not known yet)."""
    return {
        "type": ["object", "null"],
        "description": description,
        "required": ["id", "name", *extra],
        "properties": {"id": {"type": "integer"}, "name": _nullable("string"), **extra},
    }


_KIND = {"enum": ["open", "won", "lost", None], "description": "142 won, 143 lost, else open."}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["ok", "error"],
        "properties": {"ok": {"const": False}, "error": {"type": "string"}},
    },
    "LinkedContact": {
        "type": "object",
        "description": "A contact linked to a deal. `stored: false`: linked, not fetched yet "
        "(only `id` and `is_main` are then present).",
        "required": ["id", "is_main", "stored"],
        "properties": {
            **_PERSON_PROPERTIES,
            "is_main": {"type": "boolean"},
            "stored": {"type": "boolean"},
        },
    },
    "Deal": {
        "type": "object",
        "required": [
            "id",
            "is_deleted",
            "rentprog_id",
            "pipeline",
            "status",
            "responsible_user",
            "loss_reason",
            "fields",
            "tags",
            "companies",
            "contacts",
            "synced_at",
        ],
        "properties": {
            "id": _ID,
            "name": _nullable("string"),
            "price": _nullable("integer"),
            "status_id": _nullable("integer"),
            "pipeline_id": _nullable("integer"),
            "responsible_user_id": _nullable("integer"),
            "loss_reason_id": _nullable("integer"),
            "created_by": _nullable("integer", description="User id; 0 is amoCRM itself."),
            "updated_by": _nullable("integer", description="User id; 0 is amoCRM itself."),
            "created_at": _TIMESTAMP,
            "updated_at": {**_TIMESTAMP, "description": "Last change in amoCRM."},
            "closed_at": _TIMESTAMP,
            "is_deleted": {"type": "boolean"},
            "rentprog_id": _nullable("string"),
            "custom_fields": {"type": "array"},
            "synced_at": {**_TIMESTAMP, "description": "When amosync last stored a change."},
            "pipeline": _named("The pipeline (`pipeline_id`) and its name."),
            "status": _named("The stage (`status_id`), its name and kind.", kind=_KIND),
            "responsible_user": _named("The manager (`responsible_user_id`) and name."),
            "loss_reason": _named("Why a lost deal was lost (`loss_reason_id`)."),
            "fields": {
                "type": "object",
                "description": "Custom fields by their name in amoCRM (by code or id while "
                "amosync has no definition; a repeated name gets ` (id)`).",
                "additionalProperties": _ref("FieldValue"),
            },
            "tags": {"type": "array", "items": _ref("Tag")},
            "companies": {"type": "array", "items": _ref("LinkedCompany")},
            "contacts": {"type": "array", "items": {"$ref": "#/components/schemas/LinkedContact"}},
        },
    },
    "DealPage": {
        "type": "object",
        "required": ["deals", "next"],
        "properties": {
            "deals": {"type": "array", "items": {"$ref": "#/components/schemas/Deal"}},
            "next": {
                **_nullable("string"),
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    },
    "Contact": {
        "type": "object",
        "required": ["id", "is_deleted", "deal_ids"],
        "properties": {
            **_PERSON_PROPERTIES,
            "deal_ids": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "received_at", "source", "entity", "action", "status", "attempts"],
        "properties": {
            "id": _ID,
            "received_at": {"type": "string", "format": "date-time"},
            "source": {"type": "string"},
            "entity": {"type": "string"},
            "action": {"type": "string"},
            "entity_id": _nullable("integer"),
            "status": {"enum": list(STATUSES)},
            "attempts": {"type": "integer", "minimum": 0},
            "last_error": _nullable("string"),
            "processed_at": _TIMESTAMP,
            "available_at": {"type": "string", "format": "date-time"},
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["events", "next"],
        "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "next": {**_nullable("integer"), "description": "Pass as `before_id` for older."},
        },
    },
    "FieldValue": {
        "type": "object",
        "description": "A custom field: `values` for types holding several (multiselect, "
        "multitext, …), else `value`. Numbers are numbers, dates ISO 8601, checkboxes "
        "booleans, list options their label.",
        "required": ["id", "code", "type"],
        "properties": {
            "id": {"type": "integer"},
            "code": _nullable("string"),
            "type": _nullable("string"),
            "value": {},
            "values": {"type": "array"},
        },
    },
    "Tag": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {"id": {"type": "integer"}, "name": _nullable("string")},
    },
    "LinkedCompany": {
        "type": "object",
        "description": "`stored: false`: linked, not fetched yet (only `id` is then present).",
        "required": ["id", "stored"],
        "properties": {
            "id": {"type": "integer"},
            "stored": {"type": "boolean"},
            "name": _nullable("string"),
            "phones": {"type": "array", "items": {"type": "string"}},
            "emails": {"type": "array", "items": {"type": "string"}},
            "is_deleted": {"type": "boolean"},
        },
    },
    "Transition": {
        "type": "object",
        "required": ["changed_at", "pipeline", "status", "source", "left_at", "seconds_in_stage"],
        "properties": {
            "changed_at": {"type": "string", "format": "date-time"},
            "pipeline": _named("The pipeline the deal entered."),
            "status": _named("The stage the deal entered.", kind=_KIND),
            "from_pipeline": _named("The pipeline it left (null: not known)."),
            "from_status": _named("The stage it left (null: not known).", kind=_KIND),
            "changed_by": _named("Who moved it (0: amoCRM itself; null: not known)."),
            "source": {
                "enum": ["events_api", "observed", "first_seen"],
                "description": "events_api: amoCRM's event (exact time and author); "
                "observed: seen changed by amosync (at the deal's updated_at); first_seen: "
                "the stage when amosync first stored the deal.",
            },
            "left_at": {**_TIMESTAMP, "description": "Next transition; null: still there."},
            "seconds_in_stage": {
                "type": "number",
                "minimum": 0,
                "description": "Until `left_at`, or until now while still there.",
            },
        },
    },
    "History": {
        "type": "object",
        "required": ["deal_id", "transitions", "time_in_stages"],
        "properties": {
            "deal_id": _ID,
            "transitions": {"type": "array", "items": _ref("Transition")},
            "time_in_stages": {
                "type": "array",
                "description": "Total time per stage (a deal may come back to one).",
                "items": {
                    "type": "object",
                    "required": ["pipeline", "status", "seconds", "current"],
                    "properties": {
                        "pipeline": _named("Pipeline."),
                        "status": _named("Stage.", kind=_KIND),
                        "seconds": {"type": "number", "minimum": 0},
                        "current": {"type": "boolean"},
                    },
                },
            },
        },
    },
    "Stage": {
        "type": "object",
        "required": ["id", "name", "kind", "deals"],
        "properties": {
            "id": _nullable("integer"),
            "name": _nullable("string"),
            "sort": _nullable("integer"),
            "color": _nullable("string"),
            "type": _nullable("integer", description="1: incoming (unsorted), 0: regular."),
            "kind": _KIND,
            "is_deleted": {"type": "boolean", "description": "No longer listed by amoCRM."},
            "deals": {"type": "integer", "minimum": 0, "description": "Deals in it now."},
        },
    },
    "Pipeline": {
        "type": "object",
        "required": ["id", "name", "deals", "statuses"],
        "properties": {
            "id": _nullable("integer"),
            "name": _nullable("string"),
            "sort": _nullable("integer"),
            "is_main": {"type": "boolean"},
            "is_archive": {"type": "boolean"},
            "is_deleted": {"type": "boolean"},
            "deals": {"type": "integer", "minimum": 0},
            "statuses": {"type": "array", "items": _ref("Stage")},
        },
    },
    "PipelineList": {
        "type": "object",
        "required": ["pipelines"],
        "properties": {"pipelines": {"type": "array", "items": _ref("Pipeline")}},
    },
    "User": {
        "type": "object",
        "required": ["id", "name", "is_deleted"],
        "properties": {
            "id": {"type": "integer"},
            "name": _nullable("string"),
            "email": _nullable("string"),
            "is_active": _nullable("boolean"),
            "is_admin": _nullable("boolean"),
            "is_deleted": {"type": "boolean"},
        },
    },
    "UserList": {
        "type": "object",
        "required": ["users"],
        "properties": {"users": {"type": "array", "items": _ref("User")}},
    },
    "Retried": {
        "type": "object",
        "required": ["ok", "retried"],
        "properties": {"ok": {"const": True}, "retried": {"type": "array", "items": _ID}},
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "amosync read API",
            "version": __version__,
            "description": "Deals (with their contacts), contacts and inbox events from the "
            "local copy of the amoCRM account: read them here instead of calling amoCRM.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/deals": {
                "get": {
                    "operationId": "listDeals",
                    "summary": "Deals: a change feed, filtered or searched",
                    "description": "A change feed ordered by `synced_at`, then id: follow "
                    "`next` with `cursor` until it is null. `rentprog_id` narrows it to the "
                    "deals carrying that RentProg ID (normally one); `updated_since` to those "
                    "amosync stored or changed at or after that time; `pipeline_id`, "
                    "`status_id` and `responsible_user_id` to a pipeline, stage or manager; "
                    "`q` to the deals a search finds. Filters combine (AND).",
                    "parameters": [
                        _query(
                            "rentprog_id",
                            "Exact RentProg ID.",
                            {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 255,
                                "pattern": _NO_NUL,
                            },
                        ),
                        _query(
                            "updated_since",
                            "ISO 8601 date-time (no offset: UTC); deals amosync stored or "
                            "changed at or after it.",
                            {"type": "string", "format": "date-time"},
                        ),
                        _query("pipeline_id", "Only deals in this pipeline.", _ID),
                        _query("status_id", "Only deals in this stage.", _ID),
                        _query("responsible_user_id", "Only this manager's deals.", _ID),
                        _query(
                            "q",
                            "Search, any letter case: deal name, RentProg ID or id; a "
                            "contact's name or e-mail; a phone by its digits (5 or more; "
                            "+7… and 8… are the same number).",
                            {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_Q,
                                "pattern": _SOMETHING_BUT_NUL,
                            },
                        ),
                        _query(
                            "limit",
                            "Page size.",
                            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100},
                        ),
                        _query("cursor", "The previous page's `next`.", {"type": "string"}),
                    ],
                    "responses": {
                        "200": _ok("A page of deals.", "DealPage"),
                        **_BAD,
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/deals/{deal_id}": {
                "get": {
                    "operationId": "getDeal",
                    "summary": "One deal with its contacts",
                    "parameters": [_id_param("deal_id", "amoCRM deal (lead) id")],
                    "responses": {
                        "200": _ok("The deal.", "Deal"),
                        **_BAD,
                        **_AUTH_ERRORS,
                        "404": _error("No such deal stored."),
                    },
                }
            },
            "/api/deals/{deal_id}/history": {
                "get": {
                    "operationId": "getDealHistory",
                    "summary": "A deal's stage transitions with the time spent in each stage",
                    "parameters": [_id_param("deal_id", "amoCRM deal (lead) id")],
                    "responses": {
                        "200": _ok("The history, oldest first.", "History"),
                        **_BAD,
                        **_AUTH_ERRORS,
                        "404": _error("Neither the deal nor any history of it is stored."),
                    },
                }
            },
            "/api/pipelines": {
                "get": {
                    "operationId": "listPipelines",
                    "summary": "Pipelines with their stages and how many deals are in each",
                    "description": "Deals flagged deleted are not counted. A stage deals are "
                    "in that amosync has no name for is listed with a null name.",
                    "responses": {
                        "200": _ok("Every pipeline.", "PipelineList"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/users": {
                "get": {
                    "operationId": "listUsers",
                    "summary": "amoCRM users (managers)",
                    "description": "Empty when amoCRM refuses the user list to amosync's "
                    "token (it is admin-only): `amosync doctor` says so.",
                    "responses": {"200": _ok("Every user.", "UserList"), **_AUTH_ERRORS},
                }
            },
            "/api/contacts/{contact_id}": {
                "get": {
                    "operationId": "getContact",
                    "summary": "One contact with the ids of its deals",
                    "parameters": [_id_param("contact_id", "amoCRM contact id")],
                    "responses": {
                        "200": _ok("The contact.", "Contact"),
                        **_BAD,
                        **_AUTH_ERRORS,
                        "404": _error("No such contact stored."),
                    },
                }
            },
            "/api/events": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "Inbox events, newest first",
                    "parameters": [
                        _query("status", "Only events in this status.", {"enum": list(STATUSES)}),
                        _query(
                            "limit",
                            "Page size.",
                            {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        ),
                        _query("before_id", "The previous page's `next`.", _ID),
                    ],
                    "responses": {
                        "200": _ok("A page of events.", "EventPage"),
                        **_BAD,
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/events/{event_id}/retry": {
                "post": {
                    "operationId": "retryEvent",
                    "summary": "Queue a failed event again (attempts reset)",
                    "parameters": [_id_param("event_id", "Event id")],
                    "responses": {
                        "200": _ok("Queued again.", "Retried"),
                        **_BAD,
                        **_AUTH_ERRORS,
                        "404": _error("No such event."),
                        "409": _error("The event is not failed; nothing changed."),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "AMOSYNC_ADMIN_TOKEN. Without one configured, loopback "
                    "clients are let in without a token.",
                }
            },
            "schemas": SCHEMAS,
        },
    }


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(document())
