"""How a stored entity looks on the wire: full v4 objects and the trash stubs.

Links depend on the request (real responses echo its query string into every item's
`_links.self.href`), so entities are stored without links and rendered per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["leads", "contacts", "companies"]
KINDS: tuple[Kind, ...] = ("leads", "contacts", "companies")

# Scalar keys in the order real responses list them; `is_deleted` and `labor_cost` sit where
# the captured samples have them.
LEAD_KEYS = (
    "id",
    "name",
    "price",
    "responsible_user_id",
    "group_id",
    "status_id",
    "pipeline_id",
    "loss_reason_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closed_at",
    "closest_task_at",
    "is_deleted",
    "custom_fields_values",
    "score",
    "account_id",
    "labor_cost",
)
CONTACT_KEYS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "responsible_user_id",
    "group_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closest_task_at",
    "is_deleted",
    "custom_fields_values",
    "account_id",
)
COMPANY_KEYS = (
    "id",
    "name",
    "responsible_user_id",
    "group_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closest_task_at",
    "is_deleted",
    "custom_fields_values",
    "account_id",
)
KEYS: dict[Kind, tuple[str, ...]] = {
    "leads": LEAD_KEYS,
    "contacts": CONTACT_KEYS,
    "companies": COMPANY_KEYS,
}
# A trash stub keeps only these; the real sample has every other key set to null and no
# `labor_cost` at all (api_lead_only_deleted_excerpt_real.json).
_STUB_KEPT = frozenset({"id", "updated_by", "updated_at", "is_deleted", "account_id"})
_STUB_DROPPED = frozenset({"labor_cost"})


@dataclass
class StoredEntity:
    """One lead, contact or company: its scalar fields plus the links rendered into `_embedded`."""

    kind: Kind
    fields: dict[str, Any]
    tags: list[dict[str, Any]] = field(default_factory=list)
    # Leads: (contact id, is_main). Contacts and companies leave it empty.
    contacts: list[tuple[int, bool]] = field(default_factory=list)
    companies: list[int] = field(default_factory=list)

    @property
    def id(self) -> int:
        value: int = self.fields["id"]
        return value

    @property
    def updated_at(self) -> int:
        value: int = self.fields["updated_at"]
        return value

    @property
    def is_deleted(self) -> bool:
        return bool(self.fields["is_deleted"])


@dataclass(frozen=True)
class RenderContext:
    """What of the request shows up in the body: its origin, raw query and `with` list."""

    base_url: str
    query: str = ""
    with_: frozenset[str] = frozenset()
    # Leads' contact links and contacts' lead links that should stay hidden (trashed peers).
    hidden_contacts: frozenset[int] = frozenset()
    leads_by_contact: dict[int, list[int]] = field(default_factory=dict)

    def href(self, kind: str, entity_id: int) -> dict[str, dict[str, str]]:
        suffix = f"?{self.query}" if self.query else ""
        return {"self": {"href": f"{self.base_url}/api/v4/{kind}/{entity_id}{suffix}"}}


def render(entity: StoredEntity, ctx: RenderContext) -> dict[str, Any]:
    """The full v4 object, as `GET /api/v4/{kind}` returns it for this request."""
    body = {key: entity.fields[key] for key in KEYS[entity.kind]}
    body["_links"] = ctx.href(entity.kind, entity.id)
    embedded: dict[str, Any] = {"tags": [dict(t) for t in entity.tags]}
    if entity.kind != "companies":
        embedded["companies"] = [
            {"id": cid, "_links": ctx.href("companies", cid)} for cid in entity.companies
        ]
    if entity.kind == "leads" and "contacts" in ctx.with_:
        embedded["contacts"] = [
            {"id": cid, "is_main": is_main, "_links": ctx.href("contacts", cid)}
            for cid, is_main in entity.contacts
            if cid not in ctx.hidden_contacts
        ]
    if entity.kind == "contacts" and "leads" in ctx.with_:
        embedded["leads"] = [
            {"id": lid, "_links": ctx.href("leads", lid)}
            for lid in ctx.leads_by_contact.get(entity.id, [])
        ]
    body["_embedded"] = embedded
    return body


def render_stub(entity: StoredEntity, ctx: RenderContext) -> dict[str, Any]:
    """The trash stub that `with=only_deleted` returns: ids and the deletion stamp only."""
    body: dict[str, Any] = {
        key: (entity.fields[key] if key in _STUB_KEPT else None)
        for key in KEYS[entity.kind]
        if key not in _STUB_DROPPED
    }
    body["_links"] = ctx.href(entity.kind, entity.id)
    return body
