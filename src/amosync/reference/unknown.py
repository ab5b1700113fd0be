"""Whether a deal or contact stored since the last refresh names an id the reference
tables do not have (a new stage, user, field or loss reason): then refresh soon.

Only rows synced after the last refresh count: an id that refresh could not resolve (a
user amoCRM no longer lists) must not bring a refresh every few minutes on an idle account.
"""

from __future__ import annotations

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


async def unknown_reference(
    conn: AsyncConnection, since: datetime, *, check_users: bool
) -> str | None:
    """What the first unknown id found is ("stage 7000001/47000009"), or None.

    `check_users`: False when amoCRM refuses the user list (403): then no user is known and
    none is worth a refresh."""
    known_pipes = await _ids(conn, pipelines.c.id)
    known_stages = await _ids(conn, statuses.c.pipeline_id, statuses.c.id)
    known_users = await _ids(conn, users.c.id) if check_users else None
    known_reasons = await _ids(conn, loss_reasons.c.id)
    known_fields = await _ids(conn, custom_fields.c.entity_type, custom_fields.c.id)

    def user_unknown(user_id: int | None) -> bool:
        # 0 is "the system" (robots, the API), never a user.
        return known_users is not None and bool(user_id) and user_id not in known_users

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
    for pipe, stage, responsible, reason, creator, editor, values in deal_rows:
        if pipe is not None and pipe not in known_pipes:
            return f"pipeline {pipe}"
        if pipe is not None and stage is not None and (pipe, stage) not in known_stages:
            return f"stage {pipe}/{stage}"
        for user_id in (responsible, creator, editor):
            if user_unknown(user_id):
                return f"user {user_id}"
        if reason and reason not in known_reasons:
            return f"loss reason {reason}"
        for field_id in _field_ids(values):
            if ("leads", field_id) not in known_fields:
                return f"lead field {field_id}"
    c = contacts.c
    contact_rows = await conn.execute(
        select(c.responsible_user_id, c.custom_fields)
        .where(c.synced_at > since, not_(c.is_deleted))
        .limit(MAX_ROWS)
    )
    for responsible, values in contact_rows:
        if user_unknown(responsible):
            return f"user {responsible}"
        for field_id in _field_ids(values):
            if ("contacts", field_id) not in known_fields:
                return f"contact field {field_id}"
    return None
