"""Error responses of the fake, copied from real and documented amoCRM bodies.

API errors are `application/problem+json` (tests/data/api_error_*.json). 502/503/504 come
from amoCRM's nginx in front of the API, so they are HTML pages, and a client that expects
JSON on every error must cope with that.
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

import orjson
from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"
HAL_JSON = "application/hal+json"

# Details that real bodies carry; anything else falls back to the HTTP reason phrase.
_DETAILS = {
    401: "Invalid user name or password",
    402: "Payment required",
    403: "Access denied",
    429: "Too many requests",
}
_NGINX_STATUSES = frozenset({502, 503, 504})


def problem_body(status: int, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    """`{"title", "type", "status", "detail"}` plus extras such as `retry_after`."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "title": phrase,
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail if detail is not None else _DETAILS.get(status, phrase),
    }
    body.update(extra)
    return body


def internal_error_body() -> dict[str, Any]:
    """The 500 body real servers send: no `type`, a `trace_id` instead (api_error_500)."""
    return {
        "title": "ErrInternalServer",
        "status": 500,
        "detail": "Our team are probably already working on the elimination of the problem",
        "trace_id": str(uuid.uuid4()),
    }


def nginx_page(status: int) -> str:
    """The HTML error page nginx shows for gateway errors."""
    line = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n"
        f"<center><h1>{line}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


def json_response(
    body: Any, status: int = 200, media_type: str = HAL_JSON, headers: dict[str, str] | None = None
) -> Response:
    return Response(dump_json(body), status_code=status, media_type=media_type, headers=headers)


def dump_json(body: Any) -> bytes:
    """`body` as JSON. A string holding a lone UTF-16 surrogate (`"\\ud83d"`, half an emoji
    cut by a length limit) is written as the bare escape, as amoCRM's PHP `json_encode`
    writes it: store one in an entity's name or field to get such an answer."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:  # orjson refuses surrogates; the standard library escapes
        return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


def problem(status: int, detail: str | None = None, **extra: Any) -> Response:
    return json_response(problem_body(status, detail, **extra), status, PROBLEM_JSON)


def validation_error(path: str, detail: str, code: str = "InvalidType") -> Response:
    """400 with `validation-errors`, as amoCRM answers a malformed filter or parameter."""
    errors = [{"request_id": "0", "errors": [{"code": code, "path": path, "detail": detail}]}]
    body = {"validation-errors": errors, **problem_body(400, "Request validation failed")}
    return json_response(body, 400, PROBLEM_JSON)


def error_response(
    status: int,
    *,
    retry_after: float | str | None = None,
    send_retry_after_header: bool = False,
) -> Response:
    """The response a real account would give with this status and no more specific cause."""
    headers: dict[str, str] = {}
    if retry_after is not None and (send_retry_after_header or status != 429):
        headers["Retry-After"] = str(retry_after)
    if status in _NGINX_STATUSES:
        return Response(
            nginx_page(status), status_code=status, media_type="text/html", headers=headers
        )
    if status == 500:
        return json_response(internal_error_body(), 500, PROBLEM_JSON, headers)
    extra: dict[str, Any] = {}
    if status == 429:
        # The documented place for the wait is the body; the header is an opt-in extra.
        extra["retry_after"] = retry_after if retry_after is not None else 1
    return json_response(problem_body(status, **extra), status, PROBLEM_JSON, headers)
