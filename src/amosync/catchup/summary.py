"""One-line summaries of API spend and catch-up for `status` (and the status page)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from amosync.catchup.budget import BUDGETED_PURPOSES


def spend_line(by_purpose: dict[str, int], budget_per_hour: int | None = None) -> str:
    """`23 (webhook 5, catchup 18); budget 18 of 120` — the budget counts catchup, backfill
    and background verification."""
    total = sum(by_purpose.values())
    parts = ", ".join(f"{p} {n}" for p, n in sorted(by_purpose.items()) if n)
    line = f"{total} ({parts})" if parts else str(total)
    if budget_per_hour is not None:
        spent = sum(by_purpose.get(p, 0) for p in BUDGETED_PURPOSES)
        line += f"; catch-up budget {spent} of {budget_per_hour}"
    return line


def catchup_line(last_run: dict[str, Any] | None, now: datetime | None = None) -> str:
    """`4 min ago: 3 fetched, 1 deleted, 4 calls` or why it stopped."""
    if not last_run or not last_run.get("finished_at"):
        return "never ran"
    finished = datetime.fromisoformat(str(last_run["finished_at"]))
    minutes = ((now or datetime.now(UTC)) - finished).total_seconds() / 60
    fetched = sum(int(n) for n in (last_run.get("fetched") or {}).values())
    line = (
        f"{minutes:.0f} min ago: {fetched} fetched, {last_run.get('deleted', 0)} deleted, "
        f"{last_run.get('calls', 0)} calls"
    )
    stopped = last_run.get("stopped")
    return f"{line}; stopped early ({stopped}), continues next run" if stopped else line
