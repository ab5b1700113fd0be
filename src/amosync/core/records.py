"""The rows amosync stores, as plain values produced by `core.mapping` from API v4 objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DealRecord:
    """One row of `amocrm_deals` (an amoCRM lead)."""

    id: int
    name: str | None
    price: int | None
    status_id: int | None
    pipeline_id: int | None
    responsible_user_id: int | None
    created_at: datetime | None
    updated_at: datetime | None
    closed_at: datetime | None
    is_deleted: bool
    rentprog_id: str | None
    custom_fields: list[dict[str, Any]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)
    # Named by the reference tables (amocrm_loss_reasons, amocrm_users); 0 = the system.
    loss_reason_id: int | None = None
    created_by: int | None = None
    updated_by: int | None = None


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One row of `amocrm_contacts` or `amocrm_companies` (same shape)."""

    id: int
    name: str | None
    first_name: str | None
    last_name: str | None
    responsible_user_id: int | None
    created_at: datetime | None
    updated_at: datetime | None
    is_deleted: bool
    phones: list[str]
    emails: list[str]
    custom_fields: list[dict[str, Any]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)
    # The first of `phones`, as plain text for the named view (one SQL on both databases).
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class DealContactLink:
    """A deal↔contact link from a lead's `_embedded.contacts`."""

    deal_id: int
    contact_id: int
    is_main: bool
