"""Events per minute for the status page's chart: counted in SQL the same on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event

from amosync.db.database import Database
from amosync.inbox import InboxStore
from amosync.inbox.activity import per_minute
from amosync.web.activity import chart_svg
from tests.integration.test_inbox import row

NOW = datetime(2026, 11, 24, 12, 30, 40, tzinfo=UTC)


def at(minutes_ago: int, seconds: int = 5, **extra: object) -> dict[str, object]:
    when = NOW.replace(second=0) - timedelta(minutes=minutes_ago, seconds=-seconds)
    # Every row names processed_at: a multi-row insert takes its columns from the first row.
    return {**row(1), "received_at": when, "available_at": when, "processed_at": None, **extra}


async def test_counts_land_in_their_minute(database: Database) -> None:
    """Received counts by received_at, processed counts done events by processed_at; older
    than the window is left out."""
    done_at = NOW.replace(second=0) - timedelta(minutes=1, seconds=-30)
    await InboxStore(database).append(
        [
            at(0),
            at(0, seconds=50),
            at(2, status="done", processed_at=done_at),
            at(2, status="failed", processed_at=done_at),
            at(179),
            at(180),  # one minute before the 3-hour window
        ]
    )

    activity = await per_minute(database, hours=3, now=NOW)

    assert 180 == activity.minutes
    assert NOW.replace(second=0) - timedelta(minutes=179) == activity.start
    assert (1, 2, 0, 2) == (
        activity.received[0],
        activity.received[-1],
        activity.received[-2],
        activity.received[-3],
    )
    assert 5 == sum(activity.received)
    assert [1] == [n for n in activity.processed if n]
    assert 1 == activity.processed[-2]


async def test_chart_scales_to_the_busiest_minute(database: Database) -> None:
    """The SVG names its maximum and draws one point per minute for each line."""
    await InboxStore(database).append([at(0), at(0), at(0), at(5)])

    svg = chart_svg(await per_minute(database, hours=1, now=NOW), {"chart_title": "Events"})

    assert 'data-max="3"' in svg
    assert 2 * 60 == svg.count(",")  # x,y pairs: 60 per polyline


async def test_chart_reads_index_ranges_not_the_table(database: Database) -> None:
    """Both counts are ranges of an index (received_at; the partial processed_at index of
    migration 0004), so their cost follows the last hours' events, not the events kept.
    PostgreSQL is asked with sequential scans off: a plan still scanning the table would
    mean no index can answer the query."""
    done_at = NOW.replace(second=0) - timedelta(minutes=1)
    await InboxStore(database).append(
        [at(0), at(2, status="done", processed_at=done_at), at(400, status="done")]
    )
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "amocrm_webhook_events" in statement and "GROUP BY" in statement:
            seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        activity = await per_minute(database, hours=3, now=NOW)
    finally:
        event.remove(Engine, "before_cursor_execute", capture)
    assert (2, 1) == (sum(activity.received), sum(activity.processed))
    assert 2 == len(seen)

    sqlite = database.dialect == "sqlite"
    plans = []
    async with database.read() as conn:
        if not sqlite:
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, parameters in seen:
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
            plans.append(" | ".join(str(r[-1] if sqlite else r[0]) for r in rows))
        await conn.rollback()
    received_plan, processed_plan = plans
    if sqlite:
        assert "COVERING INDEX ix_amocrm_webhook_events_received_at" in received_plan
        assert "COVERING INDEX ix_amocrm_webhook_events_processed_at_status" in processed_plan
        assert all("SCAN amocrm_webhook_events " not in p + " " for p in plans), plans
    else:
        assert "ix_amocrm_webhook_events_received_at" in received_plan
        assert "ix_amocrm_webhook_events_processed_at_status" in processed_plan
        assert all("Seq Scan" not in p for p in plans), plans
