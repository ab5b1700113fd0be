"""Rows of `amocrm_deal_stage_history`, written in the transaction that stores the deal.

Three sources, most trusted last:

- `first_seen`: the stage of a deal amosync stores for the first time (or whose stored row
  had no stage), at the copy's `updated_at`. Skipped when the deal's history already ends
  in that stage (events loaded by `backfill --history` before the deal itself was).
- `observed`: a stored copy replaced by one in another (pipeline, stage), at the new copy's
  `updated_at`, author unknown. It is a stand-in for amoCRM's own record of the move.
- `events_api`: a `lead_status_changed` event (core/stage_events.py), with the event's own
  time and author, unique by event id, so re-reading an event changes nothing.

"The same transition" (an `observed` row and an event for one move): same deal, same
(pipeline, stage) before and after, and the event's time no more than `MATCH_AFTER` after
the observed row's time (amoCRM stamps both, in whole seconds) and no more than
`MATCH_BEFORE` before it. An observed row is at the `updated_at` of the first copy we
stored after the move, which is later than the move when the deal was edited again before
we fetched it (up to a catch-up interval when webhooks were lost), hence the hour; when we
still know the previous copy, the move was after its `updated_at` too, which narrows it.
An event arriving after its observed row replaces it (the nearest one at or after the
event); an observed row arriving after its event is not written. A deal moved A→B→A→B
within the hour gets every event; the one observed A→B is replaced by the nearest event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.records import DealRecord
from amosync.core.stage_events import StageChange
from amosync.db.dialect import upsert_insert
from amosync.db.tables import deal_stage_history, deals

FIRST_SEEN, OBSERVED, EVENTS_API = "first_seen", "observed", "events_api"
MATCH_BEFORE = timedelta(hours=1)
MATCH_AFTER = timedelta(seconds=60)

_H = deal_stage_history.c
Stage = tuple[int | None, int | None]  # (pipeline_id, status_id)


@dataclass(frozen=True, slots=True)
class StoredStage:
    stage: Stage
    updated_at: datetime | None


async def stages_before(
    conn: AsyncConnection, records: Sequence[DealRecord]
) -> dict[int, StoredStage]:
    """The stored stage of these deals, read before the upsert replaces them.

    Locked on PostgreSQL (FOR UPDATE, in id order): two workers storing the same deal must
    see each other's copy, or both would record a move from the same old stage. SQLite has
    one writer at a time and ignores the clause.
    """
    ids = sorted({r.id for r in records})
    if not ids:
        return {}
    d = deals.c
    rows = await conn.execute(
        select(d.id, d.pipeline_id, d.status_id, d.updated_at)
        .where(d.id.in_(ids))
        .order_by(d.id)
        .with_for_update()
    )
    return {int(i): StoredStage((p, s), u) for i, p, s, u in rows.all()}


async def record_stage_changes(
    conn: AsyncConnection,
    before: dict[int, StoredStage],
    records: Sequence[DealRecord],
    written: set[int],
    now: datetime,
) -> None:
    """History rows for the deals the upsert wrote (`written`): first_seen or observed."""
    latest = {r.id: r for r in records if r.id in written and r.status_id is not None}
    first: list[DealRecord] = []
    moved: list[tuple[DealRecord, StoredStage]] = []
    for deal_id, record in latest.items():
        stored = before.get(deal_id)
        if stored is None or stored.stage[1] is None:
            first.append(record)
        elif stored.stage != (record.pipeline_id, record.status_id):
            moved.append((record, stored))
    if not first and not moved:
        return
    # One look at the history of every deal concerned, for both kinds of row.
    known = await _rows_of(conn, [r.id for r in first] + [r.id for r, _ in moved])
    rows = _first_seen_rows(known, first, now) + _observed_rows(known, moved, now)
    if rows:
        await conn.execute(insert(deal_stage_history), rows)


async def record_events(conn: AsyncConnection, changes: Sequence[StageChange]) -> int:
    """Store transitions read from the events API; returns how many were new. An observed
    row for the same transition is replaced (module docstring)."""
    by_id = {c.event_id: c for c in changes}
    if not by_id:
        return 0
    known = await conn.execute(
        select(_H.amocrm_event_id).where(_H.amocrm_event_id.in_(sorted(by_id)))
    )
    for (event_id,) in known.all():
        by_id.pop(event_id, None)
    fresh = sorted(by_id.values(), key=lambda c: c.changed_at)
    if not fresh:
        return 0
    deal_ids = sorted({c.deal_id for c in fresh})
    # The stored deals' rows are locked as the upsert locks them (stages_before): on
    # PostgreSQL a worker writing an observed row for one of these deals either committed
    # before this look or waits until this transaction is done and then finds the event.
    await conn.execute(
        select(deals.c.id).where(deals.c.id.in_(deal_ids)).order_by(deals.c.id).with_for_update()
    )
    pool = await _rows_of(conn, deal_ids, OBSERVED)
    replaced: list[int] = []
    for change in fresh:
        match = _nearest_observed(pool, change)
        if match is not None:
            pool.remove(match)
            replaced.append(match["id"])
    if replaced:
        await conn.execute(delete(deal_stage_history).where(_H.id.in_(replaced)))
    # A concurrent run may have stored the same event since the look above: skipped, not
    # an error (the unique index is the arbiter).
    stmt = (
        upsert_insert(conn, deal_stage_history)
        .on_conflict_do_nothing(
            index_elements=[_H.amocrm_event_id], index_where=_H.amocrm_event_id.is_not(None)
        )
        .returning(_H.id)
    )
    result = await conn.execute(stmt, [_event_row(c) for c in fresh])
    return len(result.scalars().all())


def _first_seen_rows(
    known: list[dict[str, Any]], records: list[DealRecord], now: datetime
) -> list[dict[str, Any]]:
    last: dict[int, Stage] = {}
    for row in known:  # in changed_at order: the last one per deal stays
        last[row["deal_id"]] = (row["pipeline_id"], row["status_id"])
    return [
        _row(r.id, (None, None), (r.pipeline_id, r.status_id), r.updated_at or now, FIRST_SEEN)
        for r in records
        if last.get(r.id) != (r.pipeline_id, r.status_id)
    ]


def _observed_rows(
    known: list[dict[str, Any]], moved: list[tuple[DealRecord, StoredStage]], now: datetime
) -> list[dict[str, Any]]:
    events = [row for row in known if row["source"] == EVENTS_API]
    rows = []
    for record, stored in moved:
        at = record.updated_at or now
        to = (record.pipeline_id, record.status_id)
        earliest = at - MATCH_BEFORE
        if stored.updated_at is not None:
            earliest = max(earliest, stored.updated_at - MATCH_AFTER)
        if not any(
            _same_move(e, record.id, stored.stage, to)
            and earliest <= e["changed_at"] <= at + MATCH_AFTER
            for e in events
        ):
            rows.append(_row(record.id, stored.stage, to, at, OBSERVED))
    return rows


def _nearest_observed(pool: list[dict[str, Any]], change: StageChange) -> dict[str, Any] | None:
    """The observed row `change` explains: the earliest one it can be the move of."""
    frm = (change.from_pipeline_id, change.from_status_id)
    to = (change.pipeline_id, change.status_id)
    low, high = change.changed_at - MATCH_AFTER, change.changed_at + MATCH_BEFORE
    candidates = [
        o for o in pool if _same_move(o, change.deal_id, frm, to) and low <= o["changed_at"] <= high
    ]
    return min(candidates, key=lambda o: o["changed_at"], default=None)


def _same_move(row: dict[str, Any], deal_id: int, frm: Stage, to: Stage) -> bool:
    return (
        row["deal_id"] == deal_id
        and (row["from_pipeline_id"], row["from_status_id"]) == frm
        and (row["pipeline_id"], row["status_id"]) == to
    )


async def _rows_of(
    conn: AsyncConnection, deal_ids: Iterable[int], source: str | None = None
) -> list[dict[str, Any]]:
    """History rows of these deals (of one source, if given), oldest first."""
    query = select(deal_stage_history).where(_H.deal_id.in_(sorted(set(deal_ids))))
    if source is not None:
        query = query.where(_H.source == source)
    result = await conn.execute(query.order_by(_H.deal_id, _H.changed_at, _H.id))
    return [dict(row) for row in result.mappings().all()]


def _row(deal_id: int, frm: Stage, to: Stage, at: datetime, source: str) -> dict[str, Any]:
    return {
        "deal_id": deal_id,
        "pipeline_id": to[0],
        "status_id": to[1],
        "from_pipeline_id": frm[0],
        "from_status_id": frm[1],
        "changed_at": at,
        "changed_by": None,
        "source": source,
        "amocrm_event_id": None,
    }


def _event_row(change: StageChange) -> dict[str, Any]:
    frm = (change.from_pipeline_id, change.from_status_id)
    row = _row(
        change.deal_id, frm, (change.pipeline_id, change.status_id), change.changed_at, EVENTS_API
    )
    row.update(changed_by=change.changed_by, amocrm_event_id=change.event_id)
    return row
