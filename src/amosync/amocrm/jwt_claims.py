"""Read the claims amosync needs from a JWT without verifying it (pure, no I/O).

amoCRM access tokens and long-lived tokens are JWTs. We never need to trust their
signature (amoCRM checks it); we only want to know when a token expires (`exp`) and,
for OAuth tokens, which account domain it belongs to (`api_domain`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson


@dataclass(frozen=True)
class JwtClaims:
    expires_at: datetime | None
    api_domain: str | None


def read_claims(token: str) -> JwtClaims | None:
    """The `exp` and `api_domain` claims, or None when the token is not a readable JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = _decode_segment(parts[1])
    if not isinstance(payload, dict):
        return None
    return JwtClaims(_expiry(payload.get("exp")), _text(payload.get("api_domain")))


def token_expires_at(token: str) -> datetime | None:
    """When the token expires according to its `exp` claim; None when unknown."""
    claims = read_claims(token)
    return claims.expires_at if claims else None


def _decode_segment(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        return orjson.loads(raw)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        # orjson.JSONDecodeError is a ValueError; so is a non-ASCII segment's error.
        return None


def _expiry(value: object) -> datetime | None:
    # `exp` is a NumericDate: seconds since the epoch, possibly fractional. bool is an int
    # subclass in Python, and a JSON `true` is not a date.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
