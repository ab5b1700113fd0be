"""Whether a deal or contact stored since the last refresh names an id the reference
tables do not have (a new stage, user, field or loss reason): then refresh soon.

Only rows synced after the last refresh count: an id that refresh could not resolve (a
user amoCRM no longer lists) must not bring a refresh every few minutes on an idle account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import not_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.mapping import int_id
from amosync.db.tables import (
    contacts,
    custom_fields,
    deals,
    loss_reasons,
    pipelines,
    statuses,
    users,
)

# Rows looked at per check: enough to notice, bounded on a busy account.
MAX_ROWS = 2000


def _field_ids(values: object) -> set[int]:
    if not isinstance(values, list):
        return set()
    found = {int_id(v.get("field_id")) for v in values if isinstance(v, dict)}
    return {i for i in found if i is not None}


async def _ids(conn: AsyncConnection, *columns: Any) -> set[Any]:
    rows = await conn.execute(select(*columns))
    return {tuple(r) if len(columns) > 1 else r[0] for r in rows}


@dataclass(frozen=True)
class _Known:
    pipelines: set[Any]
    stages: set[Any]
    users: set[Any] | None  # None: amoCRM refuses the list, no user is known
    reasons: set[Any]
    fields: set[Any]

    def user_unknown(self, user_id: int | None) -> bool:
        # 0 is "the system" (robots, the API), never a user.
        return self.users is not None and bool(user_id) and user_id not in self.users

    def deal_unknown(self, row: Any) -> str | None:
        pipe, stage, responsible, reason, creator, editor, values = row
        if pipe is not None and pipe not in self.pipelines:
            return f"pipeline {pipe}"
        if pipe is not None and stage is not None and (pipe, stage) not in self.stages:
            return f"stage {pipe}/{stage}"
        for user_id in (responsible, creator, editor):
            if self.user_unknown(user_id):
                return f"user {user_id}"
        if reason and reason not in self.reasons:
            return f"loss reason {reason}"
        return self.field_unknown("leads", values)

    def contact_unknown(self, row: Any) -> str | None:
        responsible, values = row
        if self.user_unknown(responsible):
            return f"user {responsible}"
        return self.field_unknown("contacts", values)

    def field_unknown(self, entity: str, values: object) -> str | None:
        for field_id in _field_ids(values):
            if (entity, field_id) not in self.fields:
                return f"{entity} field {field_id}"
        return None


async def unknown_reference(
    conn: AsyncConnection, since: datetime, *, check_users: bool
) -> str | None:
    """What the first unknown id found is ("stage 7000001/47000009"), or None.

    `check_users`: False when amoCRM refuses the user list (403): then no user is known and
    none is worth a refresh."""
    known = _Known(
        pipelines=await _ids(conn, pipelines.c.id),
        stages=await _ids(conn, statuses.c.pipeline_id, statuses.c.id),
        users=await _ids(conn, users.c.id) if check_users else None,
        reasons=await _ids(conn, loss_reasons.c.id),
        fields=await _ids(conn, custom_fields.c.entity_type, custom_fields.c.id),
    )
    d = deals.c
    deal_rows = await conn.execute(
        select(
            d.pipeline_id,
            d.status_id,
            d.responsible_user_id,
            d.loss_reason_id,
            d.created_by,
            d.updated_by,
            d.custom_fields,
        )
        .where(d.synced_at > since, not_(d.is_deleted))
        .limit(MAX_ROWS)
    )
    for row in deal_rows:
        found = known.deal_unknown(row)
        if found is not None:
            return found
    c = contacts.c
    contact_rows = await conn.execute(
        select(c.responsible_user_id, c.custom_fields)
        .where(c.synced_at > since, not_(c.is_deleted))
        .limit(MAX_ROWS)
    )
    for person in contact_rows:
        found = known.contact_unknown(person)
        if found is not None:
            return found
    return None
