"""The chart of events received and processed per minute (inbox/activity.py counts them):
plain inline SVG, no script needed."""

from __future__ import annotations

from datetime import UTC, timedelta, tzinfo

from markupsafe import escape

from amosync.inbox.activity import Activity


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
