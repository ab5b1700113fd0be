"""Webhook bodies as amoCRM sends them: API v2 field names, PHP form encoding.

`lead_body("add", lead, …)` turns a lead as the fake's API renders it (v4 shape) into the
`leads[add][0][id]=…&account[subdomain]=…` body amoCRM would post. Every value is a string,
brackets are percent-encoded and a space is `+`, like PHP's `http_build_query`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import quote_plus

LeadAction = Literal["add", "update", "status", "delete"]
ContactAction = Literal["add", "update", "delete"]

# The subscription (`settings` item) that asks for each body kind.
LEAD_EVENTS: dict[LeadAction, str] = {
    "add": "add_lead",
    "update": "update_lead",
    "status": "status_lead",
    "delete": "delete_lead",
}
CONTACT_EVENTS: dict[ContactAction, str] = {
    "add": "add_contact",
    "update": "update_contact",
    "delete": "delete_contact",
}

Pairs = list[tuple[str, str]]


def php_form(pairs: Iterable[tuple[str, str]]) -> bytes:
    """`http_build_query`: only `A-Z a-z 0-9 _ . -` stay raw, a space becomes `+`."""
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in pairs).encode("ascii")


def _quote(text: str) -> str:
    # quote_plus keeps `~` raw; PHP encodes it.
    return quote_plus(text, safe="").replace("~", "%7E")


def account_pairs(account_id: int, subdomain: str, base_url: str) -> Pairs:
    return [
        ("account[subdomain]", subdomain),
        ("account[id]", str(account_id)),
        ("account[_links][self]", base_url),
    ]


def lead_body(
    action: LeadAction,
    lead: dict[str, Any],
    account: Pairs,
    *,
    old_status_id: int | None = None,
    old_pipeline_id: int | None = None,
) -> bytes:
    """The body of one `leads[<action>]` webhook for `lead` (a v4 lead dict)."""
    prefix = f"leads[{action}][0]"
    if action == "delete":
        keys = ("id", "status_id", "pipeline_id")
        pairs = [(f"{prefix}[{k}]", _text(lead.get(k))) for k in keys]
        return php_form(account + pairs)
    pairs = [
        (f"{prefix}[id]", _text(lead["id"])),
        (f"{prefix}[name]", _text(lead.get("name"))),
        (f"{prefix}[status_id]", _text(lead.get("status_id"))),
        (f"{prefix}[price]", _text(lead.get("price") or 0)),
        (f"{prefix}[responsible_user_id]", _text(lead.get("responsible_user_id"))),
        *_legacy_stamps(prefix, lead),
        (f"{prefix}[pipeline_id]", _text(lead.get("pipeline_id"))),
    ]
    if old_status_id is not None:
        pairs.append((f"{prefix}[old_status_id]", str(old_status_id)))
    if old_pipeline_id is not None:
        pairs.append((f"{prefix}[old_pipeline_id]", str(old_pipeline_id)))
    pairs += _tail(prefix, lead)
    return php_form(account + pairs)


def contact_body(action: ContactAction, contact: dict[str, Any], account: Pairs) -> bytes:
    """The body of one `contacts[<action>]` webhook for `contact` (a v4 contact dict)."""
    prefix = f"contacts[{action}][0]"
    if action == "delete":
        pairs = [(f"{prefix}[id]", _text(contact["id"])), (f"{prefix}[type]", "contact")]
        return php_form(account + pairs)
    pairs = [
        (f"{prefix}[id]", _text(contact["id"])),
        (f"{prefix}[name]", _text(contact.get("name"))),
        (f"{prefix}[responsible_user_id]", _text(contact.get("responsible_user_id"))),
        *_legacy_stamps(prefix, contact),
        (f"{prefix}[type]", "contact"),
    ]
    pairs += _tail(prefix, contact)
    return php_form(account + pairs)


def _legacy_stamps(prefix: str, entity: dict[str, Any]) -> Pairs:
    # API v2 names that webhooks still carry.
    return [
        (f"{prefix}[date_create]", _text(entity.get("created_at"))),
        (f"{prefix}[last_modified]", _text(entity.get("updated_at"))),
        (f"{prefix}[created_user_id]", _text(entity.get("created_by"))),
        (f"{prefix}[modified_user_id]", _text(entity.get("updated_by"))),
    ]


def _tail(prefix: str, entity: dict[str, Any]) -> Pairs:
    pairs = [
        (f"{prefix}[account_id]", _text(entity.get("account_id"))),
        (f"{prefix}[created_at]", _text(entity.get("created_at"))),
        (f"{prefix}[updated_at]", _text(entity.get("updated_at"))),
    ]
    for i, cf in enumerate(entity.get("custom_fields_values") or []):
        base = f"{prefix}[custom_fields][{i}]"
        pairs += [
            (f"{base}[id]", _text(cf.get("field_id"))),
            (f"{base}[name]", _text(cf.get("field_name"))),
        ]
        if cf.get("field_code"):
            pairs.append((f"{base}[code]", _text(cf["field_code"])))
        for j, value in enumerate(cf.get("values") or []):
            pairs.append((f"{base}[values][{j}][value]", _text(value.get("value"))))
            if value.get("enum_id") is not None:
                pairs.append((f"{base}[values][{j}][enum]", _text(value["enum_id"])))
    tags = (entity.get("_embedded") or {}).get("tags") or []
    for i, tag in enumerate(tags):
        pairs += [
            (f"{prefix}[tags][{i}][id]", _text(tag.get("id"))),
            (f"{prefix}[tags][{i}][name]", _text(tag.get("name"))),
        ]
    return pairs


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
