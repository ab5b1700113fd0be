"""Events received and processed per minute over the last hours, and the chart drawing them.

Counted in SQL by minute (only non-empty minutes come back), each count a range of one index
(received_at; processed_at, partial, migration 0004): the cost follows the events of the
last hours, not the events kept, and no row of the table is read. The chart is plain inline
SVG, no script needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from markupsafe import escape
from sqlalchemy import case, func, select

from amosync.db.database import Database
from amosync.db.tables import webhook_events as ev
from amosync.inbox.store import DONE

CHART_HOURS = 3


@dataclass(frozen=True)
class Activity:
    start: datetime  # the first minute shown (UTC, whole minute)
    received: list[int]  # one count per minute, oldest first
    processed: list[int]

    @property
    def minutes(self) -> int:
        return len(self.received)


def _minute_key(column: Any, dialect: str) -> Any:
    """The minute of a UTC timestamp column: 'YYYY-MM-DD HH:MM' on SQLite, a naive UTC
    timestamp on PostgreSQL (`_key` makes both the text)."""
    if dialect == "sqlite":  # stored as naive UTC text: 'YYYY-MM-DD HH:MM:SS.ffffff'
        return func.substr(column, 1, 16)
    # date_trunc rather than to_char: half the time over the rows of 3 busy hours.
    return func.date_trunc("minute", func.timezone("UTC", column))


def _key(minute: str | datetime) -> str:
    return minute if isinstance(minute, str) else minute.strftime("%Y-%m-%d %H:%M")


async def per_minute(
    db: Database, hours: int = CHART_HOURS, now: datetime | None = None
) -> Activity:
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(hours=hours) + timedelta(minutes=1)
    dialect = db.dialect
    received_key = _minute_key(ev.c.received_at, dialect)
    processed_key = _minute_key(ev.c.processed_at, dialect)
    async with db.read() as conn:
        received: dict[str, int] = _by_key(
            (
                await conn.execute(
                    select(received_key, func.count())
                    .where(ev.c.received_at >= start)
                    .group_by(received_key)
                )
            ).all()
        )
        processed: dict[str, int] = _by_key(
            (
                await conn.execute(
                    # A range of the partial (processed_at, status) index: `processed_at >=`
                    # implies its `processed_at IS NOT NULL` on both databases. Status is
                    # counted, not filtered on: given `status = 'done'`, both planners
                    # preferred the status index, whose range is every done event kept.
                    select(processed_key, func.sum(case((ev.c.status == DONE, 1), else_=0)))
                    .where(ev.c.processed_at >= start)
                    .group_by(processed_key)
                )
            ).all()
        )
    keys = [(start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(hours * 60)]
    return Activity(
        start=start,
        received=[int(received.get(k, 0)) for k in keys],
        processed=[int(processed.get(k, 0)) for k in keys],
    )


def _by_key(rows: Any) -> dict[str, int]:
    return {_key(minute): int(n) for minute, n in rows}


def chart_svg(
    activity: Activity,
    labels: dict[str, str],
    width: int = 720,
    height: int = 160,
    zone: tzinfo = UTC,  # the hour ticks read in AMOSYNC_TIMEZONE
) -> str:
    """Two polylines (received, processed) with a y-axis maximum and hour ticks."""
    pad_left, pad_bottom, pad_top = 36, 18, 8
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - pad_top
    top = max([*activity.received, *activity.processed, 1])
    n = max(activity.minutes - 1, 1)

    def points(values: list[int]) -> str:
        return " ".join(
            f"{pad_left + plot_w * i / n:.1f},{pad_top + plot_h * (1 - v / top):.1f}"
            for i, v in enumerate(values)
        )

    ticks = []
    first_hour = (60 - activity.start.minute) % 60  # ticks on whole hours
    for i in range(first_hour, activity.minutes, 60):
        x = pad_left + plot_w * i / n
        label = (activity.start + timedelta(minutes=i)).astimezone(zone).strftime("%H:%M")
        ticks.append(
            f'<line x1="{x:.1f}" y1="{pad_top}" x2="{x:.1f}" y2="{pad_top + plot_h}" '
            f'class="grid"/><text x="{x:.1f}" y="{height - 4}" class="tick">{label}</text>'
        )
    title = escape(labels["chart_title"])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{title}" class="chart" data-max="{top}">'
        f"<title>{title}</title>"
        f'<text x="2" y="{pad_top + 8}" class="tick">{top}</text>'
        f'<text x="2" y="{pad_top + plot_h}" class="tick">0</text>'
        + "".join(ticks)
        + f'<polyline class="received" fill="none" points="{points(activity.received)}"/>'
        f'<polyline class="processed" fill="none" points="{points(activity.processed)}"/>'
        "</svg>"
    )
