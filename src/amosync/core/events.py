"""What one webhook item becomes before it is stored in the inbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Entity kinds amosync keeps in its own tables. Everything else is stored as `ignored`.
SYNCED_ENTITIES = frozenset({"leads", "contacts", "companies"})
# Actions on a synced entity that do not change the entity itself (a note was added).
NON_SYNC_ACTIONS = frozenset({"note"})


@dataclass(frozen=True, slots=True)
class WebhookItem:
    """One entity item of a webhook body: `leads[update][0]` becomes one of these.

    `entity` is normalised: companies that amoCRM sends under `contacts` with `type=company`
    become `companies`; the singular `task` becomes `tasks`. `payload` is the item exactly as
    decoded (every leaf a string), `updated_at` the item's own change time in unix seconds
    (`updated_at`, else `last_modified`) when it has a valid one.
    """

    entity: str
    action: str
    entity_id: int | None
    account_id: int | None
    payload: dict[str, Any] = field(repr=False)
    updated_at: int | None = None

    @property
    def synced(self) -> bool:
        """True when the worker must fetch this entity from the API."""
        return self.entity in SYNCED_ENTITIES and self.action not in NON_SYNC_ACTIONS


@dataclass(frozen=True, slots=True)
class ParsedWebhook:
    """A whole webhook body: the `account` block and every entity item in it, in body order."""

    account_subdomain: str | None
    account_id: int | None
    items: list[WebhookItem]
