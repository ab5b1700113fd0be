"""Checks shared by both endpoints: secret, content type, body size. Each failure is a
WebhookRejected with the status and the short reason the sender sees.

They take plain header values and a stream of body chunks rather than a Starlette
`Request`, so the webhook path can run on the raw ASGI scope (see webhook/fast_path.py) and
the n8n endpoint can keep using `Request`.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterable

from amosync.errors import WebhookRejected


def check_secret(given: str | None, expected: str | None) -> None:
    """Constant-time comparison, so response timing does not reveal the secret."""
    if expected is None:
        return
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookRejected(403, "wrong or missing webhook secret")


def check_content_type(content_type: str | None, expected: str) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != expected:
        shown = media_type or "none"
        raise WebhookRejected(415, f"content type must be {expected}, got {shown}")


async def read_body(chunks: AsyncIterable[bytes], declared: str | None, limit: int) -> bytes:
    """The body, refusing early when it is larger than `limit` bytes.

    `declared` is the Content-Length header: checked first, so a large body is refused
    without reading it; a body sent without one (chunked) is read only up to the limit.
    """
    if declared is not None:
        if not declared.isdigit():
            raise WebhookRejected(400, "invalid Content-Length")
        if int(declared) > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise WebhookRejected(413, f"body larger than {limit} bytes")
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    if not body.strip():
        raise WebhookRejected(400, "empty body")
    return body
