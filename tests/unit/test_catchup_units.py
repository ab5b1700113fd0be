"""Pure pieces of catch-up: the keyset cursor, the --since parser, the status lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from amosync.catchup.pages import Cursor, following
from amosync.catchup.summary import catchup_line, spend_line
from amosync.cli.sync import parse_duration


@pytest.mark.parametrize(
    ("cursor", "values", "expected"),
    [
        # Mixed seconds: start again at the newest second (re-reading only that second).
        (Cursor(100, 1), [100, 101, 105], Cursor(105, 1)),
        (Cursor(100, 3), [100, 104], Cursor(104, 1)),
        # A whole page in the cursor's own second: the next page of that second.
        (Cursor(100, 1), [100, 100], Cursor(100, 2)),
        (Cursor(100, 2), [100, 100], Cursor(100, 3)),
        # A whole page in a later second is page 1 of that second: go to its page 2.
        (Cursor(100, 1), [120, 120], Cursor(120, 2)),
        (Cursor(100, 4), [130, 130], Cursor(130, 2)),
    ],
)
def test_following_cursor(cursor: Cursor, values: list[int], expected: Cursor) -> None:
    """The keyset walk always advances, and re-reads at most one second's entities."""
    assert expected == following(cursor, values)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1d", 86400), ("90s", 90), ("1.5h", 5400)]
)
def test_durations(text: str, seconds: float) -> None:
    """`--since` accepts a number with s, m, h or d."""
    assert seconds == parse_duration(text)


@pytest.mark.parametrize("text", ["2", "2x", "h", "-1h", "0m", "", "2 hours"])
def test_bad_durations(text: str) -> None:
    """Anything else is refused with the accepted forms in the message."""
    with pytest.raises(ValueError, match="30m, 2h, 1d"):
        parse_duration(text)


def test_spend_line_counts_budgeted_purposes_only() -> None:
    """The budget part sums catchup and backfill, not webhook-driven calls."""
    line = spend_line({"webhook": 40, "catchup": 12, "backfill": 3}, 120)

    assert "55 (backfill 3, catchup 12, webhook 40); catch-up budget 15 of 120" == line


def test_catchup_line() -> None:
    """The last run: age, what it found, calls, and a note when it stopped early."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    run = {
        "finished_at": (now - timedelta(minutes=4)).isoformat(),
        "fetched": {"leads": 2, "contacts": 1},
        "deleted": 1,
        "calls": 4,
        "stopped": "budget",
    }

    assert "never ran" == catchup_line(None)
    assert (
        "4 min ago: 3 fetched, 1 deleted, 4 calls; stopped early (budget), continues next run"
        == catchup_line(run, now)
    )
