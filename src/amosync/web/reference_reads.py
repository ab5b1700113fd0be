"""Pipelines with their stages and current deal counts, and users: the read API's
`/api/pipelines` and `/api/users`, and the status page's pipeline summary.

Counts are of deals not flagged deleted, grouped by (pipeline, stage) over the index
ix_amocrm_deals_pipeline_id_status_id_is_deleted (0012): the index alone answers it, without
reading a million deal rows. A stage deals are in that the reference tables do not know
(yet, or any more) is listed too, with a null name, so the counts always add up.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.tables import deals, pipelines, statuses, users
from amosync.web.reads import status_kind


async def _counts(conn: AsyncConnection) -> dict[tuple[int | None, int | None], int]:
    query = (
        select(deals.c.pipeline_id, deals.c.status_id, func.count())
        .where(deals.c.is_deleted.is_(False))
        .group_by(deals.c.pipeline_id, deals.c.status_id)
    )
    return {(p, s): int(n) for p, s, n in (await conn.execute(query)).all()}


def _stage(status_id: int | None, deals_now: int, row: Any = None) -> dict[str, Any]:
    return {
        "id": status_id,
        "name": row.name if row is not None else None,
        "sort": row.sort if row is not None else None,
        "color": row.color if row is not None else None,
        "type": row.type if row is not None else None,
        "kind": status_kind(status_id),
        "is_deleted": bool(row.is_deleted) if row is not None else False,
        "deals": deals_now,
    }


async def pipelines_with_counts(db: Database) -> list[dict[str, Any]]:
    """Every pipeline amosync knows or has deals in, its stages in amoCRM's order."""
    async with db.read() as conn:
        counts = await _counts(conn)
        known = (
            await conn.execute(select(pipelines).order_by(pipelines.c.sort, pipelines.c.id))
        ).all()
        stages = (
            await conn.execute(select(statuses).order_by(statuses.c.sort, statuses.c.id))
        ).all()
    result: dict[int | None, dict[str, Any]] = {}
    for p in known:
        result[p.id] = {
            "id": p.id,
            "name": p.name,
            "sort": p.sort,
            "is_main": bool(p.is_main),
            "is_archive": bool(p.is_archive),
            "is_deleted": bool(p.is_deleted),
            "deals": 0,
            "statuses": [],
        }
    for s in stages:
        if s.pipeline_id in result:
            n = counts.pop((s.pipeline_id, s.id), 0)
            result[s.pipeline_id]["statuses"].append(_stage(s.id, n, s))
    for (pipeline_id, status_id), n in sorted(
        counts.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)
    ):
        entry = result.setdefault(
            pipeline_id,
            {
                "id": pipeline_id,
                "name": None,
                "sort": None,
                "is_main": False,
                "is_archive": False,
                "is_deleted": False,
                "deals": 0,
                "statuses": [],
            },
        )
        entry["statuses"].append(_stage(status_id, n))
    for entry in result.values():
        entry["deals"] = sum(s["deals"] for s in entry["statuses"])
    return list(result.values())


async def all_users(db: Database) -> list[dict[str, Any]]:
    query = select(
        users.c.id,
        users.c.name,
        users.c.email,
        users.c.is_active,
        users.c.is_admin,
        users.c.is_deleted,
    ).order_by(users.c.name, users.c.id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [
        {
            "id": u.id,
            "name": u.name,
            "email": u.email,
            "is_active": u.is_active,
            "is_admin": u.is_admin,
            "is_deleted": bool(u.is_deleted),
        }
        for u in rows
    ]
