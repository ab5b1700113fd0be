"""Turn a raw amoCRM webhook body into a ParsedWebhook.

The body decodes to `{entity: {action: [item, ...]}, account: {...}}`. Every item becomes one
WebhookItem in body order. Entity names are normalised (companies arrive under `contacts` with
`type=company`; tasks arrive as the singular `task`), everything else is kept as sent so that
unknown entities still reach the inbox and are stored as ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from amosync.core.events import NON_SYNC_ACTIONS, SYNCED_ENTITIES, ParsedWebhook, WebhookItem
from amosync.core.form import FormDecodeError, decode_php_form
from amosync.core.nul import without_nul

__all__ = ["MAX_ITEMS", "WebhookParseError", "items_from_decoded", "parse_webhook"]

# amoCRM has not been seen sending more than one item per body; a body with hundreds is damaged
# or hostile, and each item costs an inbox row.
MAX_ITEMS = 500
# Unix seconds and entity ids fit in 18 digits; longer digit strings are garbage (and would
# overflow a BIGINT column).
_MAX_DIGITS = 18


class WebhookParseError(ValueError):
    """The body is not a webhook amosync can use; `.reason` says why in a few words.

    The only exception parse_webhook raises: form-level failures (FormDecodeError) are
    converted to it, so the web layer has a single type to catch.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_webhook(body: bytes, *, max_fields: int = 10_000, max_depth: int = 32) -> ParsedWebhook:
    """Decode `body` and list its entity items in body order."""
    # A form body never carries an unencoded NUL: such a body is broken.
    if b"\x00" in body:
        raise WebhookParseError("NUL byte in body")
    try:
        data = decode_php_form(body, max_fields=max_fields, max_depth=max_depth)
    except FormDecodeError as exc:
        raise WebhookParseError(f"malformed form body: {exc.reason}") from exc
    if b"%00" in body:
        # U+0000 in amoCRM's data (a lead's name, a field): PostgreSQL cannot store it, and
        # refusing the body would fail every webhook about that entity, so it is dropped,
        # as from API answers (core/nul.py).
        data = without_nul(data)
    return items_from_decoded(data)


def items_from_decoded(data: dict[str, Any]) -> ParsedWebhook:
    """The items of an already decoded body (`{entity: {action: [items]}, account: {...}}`),
    as n8n forwards it; same rules and errors as parse_webhook."""
    subdomain, account_id = _account(data.get("account"))
    items: list[WebhookItem] = []
    for entity_key, block in data.items():
        if entity_key == "account":
            continue
        if not isinstance(block, dict):
            raise WebhookParseError(f"{entity_key}: expected {{action: items}}")
        for action, raw_items in block.items():
            for index, item in _items(entity_key, action, raw_items):
                if len(items) >= MAX_ITEMS:
                    raise WebhookParseError(f"more than {MAX_ITEMS} items in body")
                items.append(_item(entity_key, action, index, item, account_id))
    if not items:
        raise WebhookParseError("no entity items in body")
    return ParsedWebhook(account_subdomain=subdomain, account_id=account_id, items=items)


def _account(account: Any) -> tuple[str | None, int | None]:
    """`account[subdomain]` and `account[id]`; either may be missing (2016 bodies lack the id)."""
    if account is None:
        return None, None
    if not isinstance(account, dict):
        raise WebhookParseError("account: expected an object")
    subdomain = account.get("subdomain")
    if not isinstance(subdomain, str) or not subdomain:
        subdomain = None
    return subdomain, _digits(account.get("id"))


def _items(entity_key: str, action: str, raw_items: Any) -> Iterable[tuple[object, Any]]:
    """An action's items in index order, each with its index for error messages.

    The decoder makes a list of indices 0..n-1; other indices leave a dict, ordered here by
    numeric value (compared as digit strings, so huge indices cannot hit int() limits).
    """
    if isinstance(raw_items, list):
        return enumerate(raw_items)
    return _sorted_items(f"{entity_key}[{action}]", raw_items)


def _sorted_items(path: str, raw_items: Any) -> Iterator[tuple[object, Any]]:
    if not isinstance(raw_items, dict):
        raise WebhookParseError(f"{path}: expected a list of items")
    for key in raw_items:
        if not (key.isascii() and key.isdigit()):
            raise WebhookParseError(f"{path}[{key}]: item index is not a number")

    def order(key: str) -> tuple[int, str]:
        stripped = key.lstrip("0")
        return len(stripped), stripped

    for key in sorted(raw_items, key=order):
        yield key, raw_items[key]


def _item(
    entity_key: str, action: str, index: object, item: Any, body_account_id: int | None
) -> WebhookItem:
    if not isinstance(item, dict):
        raise WebhookParseError(f"{entity_key}[{action}][{index}]: item is not an object")
    entity = _entity(entity_key, item)
    # Notes come double-nested (`leads[note][0][note][id]`): the note's own fields sit one
    # level down, next to the item-level `type` of contact/company notes.
    note = item.get("note") if action == "note" else None
    fields: dict[str, Any] = note if isinstance(note, dict) else item

    entity_id = _digits(fields.get("id"))
    if entity_id is None and entity in SYNCED_ENTITIES and action not in NON_SYNC_ACTIONS:
        # Without an id the worker cannot fetch the entity, so the delivery is useless.
        raise WebhookParseError(f"{entity_key}[{action}][{index}]: missing or non-numeric id")
    account_id = (
        body_account_id if body_account_id is not None else _digits(fields.get("account_id"))
    )
    return WebhookItem(
        entity=entity,
        action=action,
        entity_id=entity_id,
        account_id=account_id,
        payload=item,
        updated_at=_timestamp(fields.get("updated_at")) or _timestamp(fields.get("last_modified")),
    )


def _entity(entity_key: str, item: dict[str, Any]) -> str:
    if entity_key == "contacts" and item.get("type") == "company":
        return "companies"
    if entity_key == "task":
        return "tasks"
    return entity_key


def _digits(value: Any) -> int | None:
    """`value` as an int when it is a plain string of ASCII digits, else None.

    A JSON number is accepted too: n8n may forward a decoded body with numbers typed.
    """
    # Decoded bodies hold strings, so that test comes first.
    if type(value) is str:
        if value.isdigit() and value.isascii() and len(value) <= _MAX_DIGITS:
            return int(value)
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**_MAX_DIGITS:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS:
        return int(value)  # a str subclass, from n8n's JSON decoder at most
    return None


def _timestamp(value: Any) -> int | None:
    """Unix seconds, or None for anything else (task/note datetime strings, "0", garbage)."""
    seconds = _digits(value)
    return seconds if seconds else None
