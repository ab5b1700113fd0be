"""The status page's counts: pending and failed counted on every request, the totals over
every row kept (done, ignored, deals, ...) from a per-process cache at most a minute old."""

from __future__ import annotations

from amosync.db.database import Database
from amosync.inbox import InboxStore
from amosync.stats import collect_stats
from amosync.totals import PAGE_TOTALS_MAX_AGE
from tests.integration.test_inbox import row


async def test_page_counts_pending_and_failed_now_and_totals_from_the_cache(
    database: Database,
) -> None:
    inbox = InboxStore(database)
    await inbox.append([row(1, status="done"), row(2), row(3, status="failed")])
    first = await collect_stats(database, totals_max_age=PAGE_TOTALS_MAX_AGE)
    await inbox.append([row(4, status="done"), row(5), row(6, status="failed")])

    cached = await collect_stats(database, totals_max_age=PAGE_TOTALS_MAX_AGE)
    fresh = await collect_stats(database)  # `amosync status`, /metrics: counted now
    recounted = await collect_stats(database, totals_max_age=0.0)

    expected_first = {"pending": 1, "done": 1, "failed": 1, "ignored": 0}
    assert expected_first == first.events_by_status
    assert {"pending": 2, "done": 1, "failed": 2, "ignored": 0} == cached.events_by_status
    assert 2 == cached.backlog
    assert cached.last_webhook_at is not None
    after = {"pending": 2, "done": 2, "failed": 2, "ignored": 0}
    assert after == fresh.events_by_status == recounted.events_by_status


async def test_events_finished_after_the_count_show_at_once(database: Database) -> None:
    """The browser test's case: a webhook applied while the page is open moves `done` on the
    next refresh, not a minute later: finished events are added from the processed_at index."""
    inbox = InboxStore(database)
    await inbox.append([row(1), row(2)])
    await inbox.mark_done([1])
    before = await collect_stats(database, totals_max_age=PAGE_TOTALS_MAX_AGE)
    await inbox.mark_done([2])

    after = await collect_stats(database, totals_max_age=PAGE_TOTALS_MAX_AGE)

    assert 1 == before.events_by_status["done"]
    assert {"pending": 0, "done": 2, "failed": 0, "ignored": 0} == after.events_by_status
