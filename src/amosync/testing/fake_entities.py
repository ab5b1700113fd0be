"""The fake account's entities: leads, contacts and companies, edited the way amoCRM edits them.

Every change bumps `updated_at` to `max(int(now), previous + 1)`, so each edit is visible
to a client that keys on `(id, updated_at)`, even two edits within one second.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from amosync.testing.fake_events import FakeEventLog
from amosync.testing.fake_fields import (
    CLOSED_STATUSES,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_PIPELINE_ID,
    DEFAULT_STATUS_ID,
    DEFAULT_SUBDOMAIN,
    DEFAULT_USER_ID,
    Multitext,
    with_contact_fields,
)
from amosync.testing.fake_query import ListQuery, apply_query
from amosync.testing.fake_render import (
    KEYS,
    Kind,
    RenderContext,
    StoredEntity,
    render,
    render_stub,
)

# Fields a caller may not set through update_*: the server owns them.
_SERVER_OWNED = frozenset({"id", "account_id", "created_at", "updated_at", "is_deleted"})
# Extra update_* keywords per kind that are not scalar fields.
_LINK_KEYS: dict[Kind, frozenset[str]] = {
    "leads": frozenset({"contacts", "companies", "tags"}),
    "contacts": frozenset({"company_id", "phones", "emails", "tags"}),
    "companies": frozenset({"phones", "emails", "tags"}),
}
# Distinct id ranges per kind make a mixed-up id in a client fail loudly instead of matching.
_FIRST_IDS: dict[Kind, int] = {"leads": 10000001, "contacts": 20000001, "companies": 30000001}


@dataclass(kw_only=True)
class FakeEntities:
    """An amoCRM account's entities in memory. Plain Python; thread-safe through `lock`."""

    account_id: int = DEFAULT_ACCOUNT_ID
    subdomain: str = DEFAULT_SUBDOMAIN
    account_name: str = "Test account"
    wall_clock: Callable[[], float] = time.time
    leads: dict[int, StoredEntity] = field(default_factory=dict)
    contacts: dict[int, StoredEntity] = field(default_factory=dict)
    companies: dict[int, StoredEntity] = field(default_factory=dict)
    # `/api/v4/events`: deleting or restoring an entity records `<kind>_deleted|restored`,
    # moving a lead to another stage or pipeline `lead_status_changed`.
    events: FakeEventLog = field(default_factory=FakeEventLog)
    # The real-port server reads from its own thread while a test edits from another.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    # Ids list requests leave out although the entity is live (a lagging list index, as
    # amoCRM's can be): only a single-id GET returns them. Tests add to it.
    omitted_from_lists: set[int] = field(default_factory=set)
    _next_ids: dict[Kind, int] = field(
        default_factory=lambda: dict(_FIRST_IDS), init=False, repr=False
    )
    _tag_ids: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"https://{self.subdomain}.amocrm.ru"

    def table(self, kind: Kind) -> dict[int, StoredEntity]:
        tables = {"leads": self.leads, "contacts": self.contacts, "companies": self.companies}
        return tables[kind]

    # -- leads ---------------------------------------------------------------------------

    def add_lead(
        self,
        id: int | None = None,
        name: str | None = None,
        price: int = 0,
        status_id: int = DEFAULT_STATUS_ID,
        pipeline_id: int = DEFAULT_PIPELINE_ID,
        responsible_user_id: int = DEFAULT_USER_ID,
        custom_fields_values: list[dict[str, Any]] | None = None,
        contacts: Sequence[tuple[int, bool]] = (),
        tags: Iterable[str] = (),
        companies: Sequence[int] = (),
        created_by: int = DEFAULT_USER_ID,
        created_at: int | None = None,
    ) -> dict[str, Any]:
        """Create a lead; returns it as `GET /api/v4/leads/{id}?with=contacts` would."""
        with self.lock:
            lead_id = self._claim_id("leads", id)
            fields = self._base_fields(lead_id, created_by, created_at)
            fields.update(
                name=name if name is not None else f"Сделка #{lead_id}",
                price=price,
                responsible_user_id=responsible_user_id,
                status_id=status_id,
                pipeline_id=pipeline_id,
                loss_reason_id=None,
                # Closing stamps the moment, so a lead born closed is closed at creation.
                closed_at=fields["created_at"] if status_id in CLOSED_STATUSES else None,
                custom_fields_values=_cfv(custom_fields_values),
                score=None,
                labor_cost=None,
            )
            entity = StoredEntity(
                "leads", fields, self._tags(tags), list(contacts), list(companies)
            )
            self.leads[lead_id] = entity
            return self._view(entity)

    def update_lead(self, id: int, **changes: Any) -> dict[str, Any]:
        """Change fields (and `contacts`/`companies`/`tags` links) of a live lead."""
        with self.lock:
            entity = self._live("leads", id)
            old_status = entity.fields["status_id"]
            old_pipeline = entity.fields["pipeline_id"]
            self._apply(entity, changes)
            new_status = entity.fields["status_id"]
            if new_status != old_status and "closed_at" not in changes:
                # Closing stamps the moment; reopening clears it.
                closed = new_status in CLOSED_STATUSES
                entity.fields["closed_at"] = entity.updated_at if closed else None
            if (new_status, entity.fields["pipeline_id"]) != (old_status, old_pipeline):
                self.events.stage_changed(entity.fields, old_status, old_pipeline, self.account_id)
            return self._view(entity)

    def delete_lead(self, id: int, updated_by: int = DEFAULT_USER_ID) -> dict[str, Any]:
        """Move a lead to the trash; returns its `with=only_deleted` stub."""
        return self._set_deleted("leads", id, True, updated_by)

    def restore_lead(self, id: int, updated_by: int = DEFAULT_USER_ID) -> dict[str, Any]:
        """Bring a lead back from the trash."""
        return self._set_deleted("leads", id, False, updated_by)

    # -- contacts ------------------------------------------------------------------------

    def add_contact(
        self,
        id: int | None = None,
        name: str | None = None,
        first_name: str = "",
        last_name: str = "",
        responsible_user_id: int = DEFAULT_USER_ID,
        phones: Iterable[Multitext] = (),
        emails: Iterable[Multitext] = (),
        custom_fields_values: list[dict[str, Any]] | None = None,
        company_id: int | None = None,
        tags: Iterable[str] = (),
        created_by: int = DEFAULT_USER_ID,
        created_at: int | None = None,
    ) -> dict[str, Any]:
        """Create a contact; phones/e-mails become PHONE/EMAIL multitext fields."""
        with self.lock:
            contact_id = self._claim_id("contacts", id)
            full_name = name if name is not None else f"{first_name} {last_name}".strip()
            fields = self._base_fields(contact_id, created_by, created_at)
            fields.update(
                name=full_name or f"Контакт #{contact_id}",
                first_name=first_name,
                last_name=last_name,
                responsible_user_id=responsible_user_id,
                custom_fields_values=with_contact_fields(custom_fields_values, phones, emails),
            )
            companies = [company_id] if company_id is not None else []
            entity = StoredEntity("contacts", fields, self._tags(tags), companies=companies)
            self.contacts[contact_id] = entity
            return self._view(entity)

    def update_contact(self, id: int, **changes: Any) -> dict[str, Any]:
        """Change a live contact; `phones`/`emails`/`company_id`/`tags` are accepted too."""
        with self.lock:
            entity = self._live("contacts", id)
            self._apply(entity, changes)
            return self._view(entity)

    def delete_contact(self, id: int, updated_by: int = DEFAULT_USER_ID) -> dict[str, Any]:
        return self._set_deleted("contacts", id, True, updated_by)

    def restore_contact(self, id: int, updated_by: int = DEFAULT_USER_ID) -> dict[str, Any]:
        return self._set_deleted("contacts", id, False, updated_by)

    # -- companies -----------------------------------------------------------------------

    def add_company(
        self,
        id: int | None = None,
        name: str | None = None,
        responsible_user_id: int = DEFAULT_USER_ID,
        phones: Iterable[Multitext] = (),
        emails: Iterable[Multitext] = (),
        custom_fields_values: list[dict[str, Any]] | None = None,
        tags: Iterable[str] = (),
        created_by: int = DEFAULT_USER_ID,
        created_at: int | None = None,
    ) -> dict[str, Any]:
        """Create a company (same field set as a contact, without the name parts)."""
        with self.lock:
            company_id = self._claim_id("companies", id)
            fields = self._base_fields(company_id, created_by, created_at)
            fields.update(
                name=name if name is not None else f"Компания #{company_id}",
                responsible_user_id=responsible_user_id,
                custom_fields_values=with_contact_fields(custom_fields_values, phones, emails),
            )
            entity = StoredEntity("companies", fields, self._tags(tags))
            self.companies[company_id] = entity
            return self._view(entity)

    def update_company(self, id: int, **changes: Any) -> dict[str, Any]:
        with self.lock:
            entity = self._live("companies", id)
            self._apply(entity, changes)
            return self._view(entity)

    def delete_company(self, id: int, updated_by: int = DEFAULT_USER_ID) -> dict[str, Any]:
        return self._set_deleted("companies", id, True, updated_by)

    def restore_company(self, id: int, updated_by: int = DEFAULT_USER_ID) -> dict[str, Any]:
        return self._set_deleted("companies", id, False, updated_by)

    # -- reads used by the endpoints -----------------------------------------------------

    def select(self, kind: Kind, query: ListQuery) -> list[StoredEntity]:
        """Entities matching a list request, sorted; `with=only_deleted` selects the trash."""
        with self.lock:
            rows = [e for i, e in self.table(kind).items() if i not in self.omitted_from_lists]
        return apply_query(rows, query)

    def render_context(self, base_url: str, query: str, with_: frozenset[str]) -> RenderContext:
        """Everything `render` needs to know about this request and the entities' peers."""
        with self.lock:
            hidden = frozenset(cid for cid, c in self.contacts.items() if c.is_deleted)
            by_contact: dict[int, list[int]] = {}
            if "leads" in with_:
                for lead in self.leads.values():
                    if not lead.is_deleted:
                        for cid, _main in lead.contacts:
                            by_contact.setdefault(cid, []).append(lead.id)
        return RenderContext(base_url, query, with_, hidden, by_contact)

    # -- internals -----------------------------------------------------------------------

    def _claim_id(self, kind: Kind, wanted: int | None) -> int:
        table = self.table(kind)
        if wanted is None:
            wanted = self._next_ids[kind]
            while wanted in table:
                wanted += 1
        elif wanted in table:
            raise ValueError(f"{kind} id {wanted} already exists")
        self._next_ids[kind] = max(self._next_ids[kind], wanted + 1)
        return wanted

    def _base_fields(
        self, entity_id: int, created_by: int, created_at: int | None
    ) -> dict[str, Any]:
        now = created_at if created_at is not None else int(self.wall_clock())
        return {
            "id": entity_id,
            "name": "",
            "group_id": 0,
            "created_by": created_by,
            "updated_by": created_by,
            "created_at": now,
            "updated_at": now,
            "closest_task_at": None,
            "is_deleted": False,
            "custom_fields_values": None,
            "account_id": self.account_id,
        }

    def _tags(self, names: Iterable[str]) -> list[dict[str, Any]]:
        tags = []
        for tag in names:
            tag_id = self._tag_ids.setdefault(tag, 61001 + len(self._tag_ids))
            tags.append({"id": tag_id, "name": tag, "color": None})
        return tags

    def _live(self, kind: Kind, entity_id: int) -> StoredEntity:
        entity = self.table(kind).get(entity_id)
        if entity is None or entity.is_deleted:
            raise KeyError(f"no live {kind} with id {entity_id}")
        return entity

    def _bump(self, entity: StoredEntity, updated_by: int | None) -> None:
        entity.fields["updated_at"] = max(int(self.wall_clock()), entity.updated_at + 1)
        if updated_by is not None:
            entity.fields["updated_by"] = updated_by

    def _apply(self, entity: StoredEntity, changes: dict[str, Any]) -> None:
        allowed = (set(KEYS[entity.kind]) - _SERVER_OWNED) | _LINK_KEYS[entity.kind]
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"cannot change {sorted(unknown)} of {entity.kind}")
        changes = copy.deepcopy(changes)
        if "tags" in changes:
            entity.tags = self._tags(changes.pop("tags"))
        if "contacts" in changes:
            entity.contacts = list(changes.pop("contacts"))
        if "companies" in changes:
            entity.companies = list(changes.pop("companies"))
        if "company_id" in changes:
            company_id = changes.pop("company_id")
            entity.companies = [company_id] if company_id is not None else []
        phones, emails = changes.pop("phones", None), changes.pop("emails", None)
        if "custom_fields_values" in changes:
            changes["custom_fields_values"] = _cfv(changes["custom_fields_values"])
        entity.fields.update(changes)
        if phones is not None or emails is not None:
            entity.fields["custom_fields_values"] = with_contact_fields(
                entity.fields["custom_fields_values"], phones, emails
            )
        self._bump(entity, changes.get("updated_by", DEFAULT_USER_ID))

    def _set_deleted(
        self, kind: Kind, entity_id: int, deleted: bool, updated_by: int
    ) -> dict[str, Any]:
        with self.lock:
            entity = self.table(kind).get(entity_id)
            if entity is None or entity.is_deleted == deleted:
                state = "live" if deleted else "trashed"
                raise KeyError(f"no {state} {kind} with id {entity_id}")
            entity.fields["is_deleted"] = deleted
            self._bump(entity, updated_by)
            self.events.entity_trashed(
                kind, entity_id, deleted, entity.updated_at, self.account_id, updated_by
            )
            return self._view(entity)

    def _view(self, entity: StoredEntity) -> dict[str, Any]:
        with_ = frozenset({"contacts"}) if entity.kind == "leads" else frozenset()
        ctx = self.render_context(self.base_url, "", with_)
        return render_stub(entity, ctx) if entity.is_deleted else render(entity, ctx)


def _cfv(values: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    # The API sends null, never [], for an entity without custom field values.
    return copy.deepcopy(values) if values else None
