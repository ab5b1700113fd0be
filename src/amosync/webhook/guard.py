"""Checks shared by both endpoints: secret, content type, body size. Each failure is a
WebhookRejected with the status and the short reason the sender sees."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from amosync.errors import WebhookRejected


def check_secret(given: str | None, expected: str | None) -> None:
    """Constant-time comparison, so response timing does not reveal the secret."""
    if expected is None:
        return
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookRejected(403, "wrong or missing webhook secret")


def check_content_type(request: Request, expected: str) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != expected:
        shown = media_type or "none"
        raise WebhookRejected(415, f"content type must be {expected}, got {shown}")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing early when it is larger than `limit` bytes.

    Content-Length is checked first so a large body is refused without reading it; a body
    sent without one (chunked) is read only up to the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise WebhookRejected(400, "invalid Content-Length")
        if int(declared) > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise WebhookRejected(400, "empty body")
    return body
