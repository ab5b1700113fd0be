"""Reading deals and contacts as other services see them: each deal with the names of its
pipeline, stage, manager and loss reason, its contacts, fields, tags and companies.

Shared by the read API and the status page's search. A deal's contacts come from the link
table; a linked contact amosync has not fetched yet still appears, with `stored: false`.
The change feed pages by `(synced_at, id)`: `synced_at` moves whenever amosync stores a
change to the row, deletion flags included.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.tables import (
    contacts,
    deal_contacts,
    deals,
    loss_reasons,
    pipelines,
    statuses,
    users,
)
from amosync.web.deal_extras import attach_extras
from amosync.web.params import MAX_ID, bounded_int, utc_datetime
from amosync.web.search import search_condition

MAX_PAGE = 500
# Ours are ~60 characters: an ISO date-time with offset, "|", an id.
_MAX_CURSOR = 200

_DEAL_COLUMNS = [c for c in deals.columns if c.name != "raw"]
_CONTACT_COLUMNS = [c for c in contacts.columns if c.name != "raw"]
# The names of what a deal's ids point at (the reference tables, 0009). Outer joins on
# primary keys: a deal whose stage amosync has not learnt yet still appears, its name null.
_NAMED_DEALS = (
    deals.outerjoin(pipelines, pipelines.c.id == deals.c.pipeline_id)
    .outerjoin(
        statuses,
        and_(statuses.c.pipeline_id == deals.c.pipeline_id, statuses.c.id == deals.c.status_id),
    )
    .outerjoin(users, users.c.id == deals.c.responsible_user_id)
    .outerjoin(loss_reasons, loss_reasons.c.id == deals.c.loss_reason_id)
)
_NAME_COLUMNS = [
    pipelines.c.name.label("pipeline_name"),
    statuses.c.name.label("status_name"),
    users.c.name.label("responsible_user_name"),
    loss_reasons.c.name.label("loss_reason_name"),
]
# amoCRM's system stages, the same ids in every pipeline (the view amocrm_deals_named agrees).
STATUS_WON, STATUS_LOST = 142, 143


@dataclass(frozen=True)
class DealPage:
    deals: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class DealFilter:
    """What a list of deals is narrowed to; None is "any"."""

    since: datetime | None = None
    rentprog_id: str | None = None
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    q: str | None = None  # web/search.py

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.rentprog_id is not None:
            found.append(deals.c.rentprog_id == self.rentprog_id)
        if self.since is not None:
            found.append(deals.c.synced_at >= self.since)
        for column, value in (
            (deals.c.pipeline_id, self.pipeline_id),
            (deals.c.status_id, self.status_id),
            (deals.c.responsible_user_id, self.responsible_user_id),
        ):
            if value is not None:
                found.append(column == value)
        if self.q:
            found.append(search_condition(self.q, dialect))
        return found


def status_kind(status_id: int | None) -> str | None:
    if status_id is None:
        return None
    return {STATUS_WON: "won", STATUS_LOST: "lost"}.get(status_id, "open")


def _named(id_: int | None, name: str | None, **extra: Any) -> dict[str, Any] | None:
    return None if id_ is None else {"id": id_, "name": name, **extra}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _deal_json(row: Row[Any], linked: list[dict[str, Any]]) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "name": m["name"],
        "price": m["price"],
        "status_id": m["status_id"],
        "pipeline_id": m["pipeline_id"],
        "responsible_user_id": m["responsible_user_id"],
        "loss_reason_id": m["loss_reason_id"],
        "created_by": m["created_by"],
        "updated_by": m["updated_by"],
        "created_at": _iso(m["created_at"]),
        "updated_at": _iso(m["updated_at"]),
        "closed_at": _iso(m["closed_at"]),
        "is_deleted": bool(m["is_deleted"]),
        "rentprog_id": m["rentprog_id"],
        "custom_fields": m["custom_fields"],
        "synced_at": _iso(m["synced_at"]),
        "pipeline": _named(m["pipeline_id"], m["pipeline_name"]),
        "status": _named(m["status_id"], m["status_name"], kind=status_kind(m["status_id"])),
        "responsible_user": _named(m["responsible_user_id"], m["responsible_user_name"]),
        "loss_reason": _named(m["loss_reason_id"], m["loss_reason_name"]),
        "contacts": linked,
    }


def _deals_query() -> Select[Any]:
    return select(*_DEAL_COLUMNS, *_NAME_COLUMNS).select_from(_NAMED_DEALS)


def _contact_json(m: Any) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "first_name": m["first_name"],
        "last_name": m["last_name"],
        "responsible_user_id": m["responsible_user_id"],
        "created_at": _iso(m["created_at"]),
        "updated_at": _iso(m["updated_at"]),
        "is_deleted": bool(m["is_deleted"]),
        "phones": m["phones"],
        "emails": m["emails"],
        "custom_fields": m["custom_fields"],
        "synced_at": _iso(m["synced_at"]),
    }


async def _with_contacts(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """Attach every deal's contacts with one query for the whole page."""
    ids = [int(r._mapping["id"]) for r in rows]
    linked: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        query = (
            select(deal_contacts.c.deal_id, deal_contacts.c.contact_id, deal_contacts.c.is_main)
            .add_columns(*_CONTACT_COLUMNS)
            .select_from(
                deal_contacts.outerjoin(contacts, contacts.c.id == deal_contacts.c.contact_id)
            )
            .where(deal_contacts.c.deal_id.in_(ids))
            .order_by(deal_contacts.c.deal_id, deal_contacts.c.is_main.desc(), contacts.c.id)
        )
        for link in (await conn.execute(query)).all():
            m = link._mapping
            entry: dict[str, Any] = {"id": m["contact_id"], "is_main": bool(m["is_main"])}
            if m["id"] is None:
                entry["stored"] = False
            else:
                entry.update(_contact_json(m), stored=True)
            linked[int(m["deal_id"])].append(entry)
    page = [_deal_json(r, linked[int(r._mapping["id"])]) for r in rows]
    await attach_extras(conn, page)
    return page


async def deal_by_id(db: Database, deal_id: int) -> dict[str, Any] | None:
    if not 0 < deal_id <= MAX_ID:
        return None
    async with db.read() as conn:
        row = (await conn.execute(_deals_query().where(deals.c.id == deal_id))).first()
        return None if row is None else (await _with_contacts(conn, [row]))[0]


async def search_deals(db: Database, q: str, limit: int) -> list[dict[str, Any]]:
    """Deals `q` finds (web/search.py), the most recently changed first: the status page's box."""
    query = (
        _deals_query()
        .where(*DealFilter(q=q).conditions(db.dialect))
        .order_by(deals.c.synced_at.desc(), deals.c.id.desc())
        .limit(limit)
    )
    async with db.read() as conn:
        return await _with_contacts(conn, (await conn.execute(query)).all())


async def deals_changed_since(
    db: Database, which: DealFilter, limit: int, cursor: str | None
) -> DealPage:
    """Deals `which` selects, oldest change first, `limit` at a time: with `since`, those
    stored or changed at or after it.

    Keyset pagination: the cursor names the last row returned, so rows changing meanwhile
    move to a later page instead of shifting or repeating this one.
    """
    query = (
        _deals_query()
        .where(*which.conditions(db.dialect))
        .order_by(deals.c.synced_at, deals.c.id)
        .limit(limit + 1)
    )
    if cursor is not None:
        after_at, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                deals.c.synced_at > after_at,
                and_(deals.c.synced_at == after_at, deals.c.id > after_id),
            )
        )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
        page = await _with_contacts(conn, rows[:limit])
    more = len(rows) > limit
    last = rows[limit - 1]._mapping if more else None
    return DealPage(page, encode_cursor(last["synced_at"], last["id"]) if last else None)


async def contact_by_id(db: Database, contact_id: int) -> dict[str, Any] | None:
    """A contact with the ids of the deals it is linked to."""
    if not 0 < contact_id <= MAX_ID:
        return None
    async with db.read() as conn:
        row = (
            await conn.execute(select(*_CONTACT_COLUMNS).where(contacts.c.id == contact_id))
        ).first()
        if row is None:
            return None
        deal_ids = (
            await conn.scalars(
                select(deal_contacts.c.deal_id)
                .where(deal_contacts.c.contact_id == contact_id)
                .order_by(deal_contacts.c.deal_id)
            )
        ).all()
    return {**_contact_json(row._mapping), "deal_ids": [int(i) for i in deal_ids]}


def encode_cursor(synced_at: datetime, deal_id: int) -> str:
    raw = f"{synced_at.astimezone(UTC).isoformat()}|{deal_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises ValueError for anything `encode_cursor` did not make."""
    if len(cursor) > _MAX_CURSOR:
        raise ValueError("cursor is not one this API returned")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("cursor is not one this API returned") from None
    at, _, deal_id = raw.partition("|")
    parsed = utc_datetime(at, naive_is_utc=False)
    number = bounded_int(deal_id, 1, MAX_ID)
    if parsed is None or number is None:
        raise ValueError("cursor is not one this API returned")
    return parsed, number
