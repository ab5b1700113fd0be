"""`aware`: timestamps that bypassed `UTCDateTime` (aggregates over SQLite's text column)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from amosync.db.types import aware


def test_sqlite_text_and_naive_values_are_utc_and_aware_ones_are_kept() -> None:
    moscow = timezone(timedelta(hours=3))
    assert datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) == aware("2026-01-02 03:04:05.000000")
    assert datetime(2026, 1, 2, tzinfo=UTC) == aware(datetime(2026, 1, 2))  # noqa: DTZ001
    kept = datetime(2026, 1, 2, tzinfo=moscow)
    assert kept is aware(kept)
    assert aware(None) is None
