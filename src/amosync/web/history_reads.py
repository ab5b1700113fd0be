"""A deal's stage history with the time spent in each stage: `/api/deals/{id}/history`
and the status page's timeline.

Rows come from `amocrm_deal_stage_history` (the upsert and catch-up write it; see
docs/READING_DATA.md for its sources). A deal stays in the stage a transition entered until
the next transition; the last one has no end yet and is counted up to `now`. Transitions
at the same instant keep the order they were written in (the row id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from amosync.db.database import Database
from amosync.db.tables import deal_stage_history, deals, pipelines, statuses, users
from amosync.web.reads import status_kind

_h = deal_stage_history
_to_stage = statuses.alias("to_stage")
_from_stage = statuses.alias("from_stage")
_to_pipeline = pipelines.alias("to_pipeline")
_from_pipeline = pipelines.alias("from_pipeline")


def _stage_of(pipeline_id: Any, status_id: Any, pipeline_name: Any, status_name: Any) -> Any:
    if pipeline_id is None and status_id is None:
        return None, None
    pipeline = None if pipeline_id is None else {"id": pipeline_id, "name": pipeline_name}
    status = (
        None
        if status_id is None
        else {"id": status_id, "name": status_name, "kind": status_kind(status_id)}
    )
    return pipeline, status


async def deal_history(db: Database, deal_id: int, now: datetime) -> dict[str, Any] | None:
    """The transitions oldest first, and the total time per stage; None when amosync has
    neither the deal nor any history of it."""
    query = (
        select(
            _h,
            _to_pipeline.c.name.label("pipeline_name"),
            _to_stage.c.name.label("status_name"),
            _from_pipeline.c.name.label("from_pipeline_name"),
            _from_stage.c.name.label("from_status_name"),
            users.c.name.label("changed_by_name"),
        )
        .select_from(
            _h.outerjoin(_to_pipeline, _to_pipeline.c.id == _h.c.pipeline_id)
            .outerjoin(
                _to_stage,
                and_(_to_stage.c.pipeline_id == _h.c.pipeline_id, _to_stage.c.id == _h.c.status_id),
            )
            .outerjoin(_from_pipeline, _from_pipeline.c.id == _h.c.from_pipeline_id)
            .outerjoin(
                _from_stage,
                and_(
                    _from_stage.c.pipeline_id == _h.c.from_pipeline_id,
                    _from_stage.c.id == _h.c.from_status_id,
                ),
            )
            .outerjoin(users, users.c.id == _h.c.changed_by)
        )
        .where(_h.c.deal_id == deal_id)
        .order_by(_h.c.changed_at, _h.c.id)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
        stored = await conn.scalar(select(deals.c.id).where(deals.c.id == deal_id))
    if not rows and stored is None:
        return None
    transitions = []
    totals: dict[tuple[Any, Any], dict[str, Any]] = {}
    for n, row in enumerate(rows):
        left_at: datetime | None = rows[n + 1].changed_at if n + 1 < len(rows) else None
        seconds = max(0.0, ((left_at or now) - row.changed_at).total_seconds())
        pipeline, status = _stage_of(
            row.pipeline_id, row.status_id, row.pipeline_name, row.status_name
        )
        from_pipeline, from_status = _stage_of(
            row.from_pipeline_id,
            row.from_status_id,
            row.from_pipeline_name,
            row.from_status_name,
        )
        transitions.append(
            {
                "changed_at": row.changed_at.isoformat(),
                "pipeline": pipeline,
                "status": status,
                "from_pipeline": from_pipeline,
                "from_status": from_status,
                "changed_by": None
                if row.changed_by is None
                else {"id": row.changed_by, "name": row.changed_by_name},
                "source": row.source,
                "left_at": left_at.isoformat() if left_at is not None else None,
                "seconds_in_stage": round(seconds, 3),
            }
        )
        total = totals.setdefault(
            (row.pipeline_id, row.status_id),
            {"pipeline": pipeline, "status": status, "seconds": 0.0, "current": False},
        )
        total["seconds"] = round(total["seconds"] + seconds, 3)
        total["current"] = left_at is None
    return {"deal_id": deal_id, "transitions": transitions, "time_in_stages": list(totals.values())}
