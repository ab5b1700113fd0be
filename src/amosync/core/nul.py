"""U+0000 taken out of amoCRM's data (API answers, n8n pushes, webhooks) before it is stored.

PostgreSQL's `text` and `jsonb` cannot hold the NUL character: one deal whose name or custom
field carried it (JSON allows `\\u0000`) failed the upsert of its whole batch of up to 250,
every time the batch was retried. It is dropped, on SQLite too, so both databases hold the
same copy. Webhooks get the same treatment (core/webhook.py); only a raw NUL byte, which no
form body carries, is refused there.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

NUL = "\x00"
T = TypeVar("T")

# How NUL appears in JSON text: control characters are always escaped there.
JSON_ESCAPED_NUL = b"\\u0000"


def without_nul(value: T) -> T:
    """`value` (decoded JSON: dicts, lists, strings, numbers) with NUL removed from every string,
    keys included. Containers without NUL come back as equal copies."""
    return cast(T, _strip(value))


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(NUL, "") if NUL in value else value
    if isinstance(value, dict):
        return {_strip(k): _strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
