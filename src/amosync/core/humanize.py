"""Times and ages as people read them, shared by the CLI, doctor, /health and the status page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def age(value: float | timedelta | None) -> str:
    """`42 s`, `15 min`, `3.5 h`, `4 days`; `—` when unknown. Negative ages count as 0."""
    if value is None:
        return "—"
    seconds = max(value.total_seconds() if isinstance(value, timedelta) else value, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def when(value: datetime | None) -> str:
    """A UTC timestamp to the second; `—` when unknown."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"
