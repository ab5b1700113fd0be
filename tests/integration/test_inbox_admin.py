"""Operator access to the inbox: listing pages newest first, retry touches only failed rows."""

from __future__ import annotations

import pytest

from amosync.db.database import Database
from amosync.inbox import InboxStore
from amosync.inbox.admin import get_event, list_events, retry_all_failed, retry_events
from tests.integration.test_inbox import row, statuses


async def test_list_pages_newest_first_with_status_filter(database: Database) -> None:
    """`before_id` continues where the last page ended; the status filter narrows it."""
    await InboxStore(database).append(
        [row(1), row(2, status="failed"), row(3), row(4, status="failed"), row(5)]
    )

    first = await list_events(database, limit=2)
    second = await list_events(database, limit=2, before_id=first[-1].id)
    failed = await list_events(database, status="failed")

    assert [5, 4] == [e.entity_id for e in first]
    assert [3, 2] == [e.entity_id for e in second]
    assert [4, 2] == [e.entity_id for e in failed]
    assert None is first[0].payload


async def test_show_includes_payload_and_missing_is_none(database: Database) -> None:
    """One event comes with its stored payload; an unknown id gives None."""
    await InboxStore(database).append([row(7)])
    (listed,) = await list_events(database)

    shown = await get_event(database, listed.id)

    assert shown is not None
    assert {"id": "7"} == shown.payload
    assert None is await get_event(database, listed.id + 1000)


async def test_retry_requeues_only_failed_events(database: Database) -> None:
    """Retry makes failed events pending with attempts reset; done or pending ones stay."""
    await InboxStore(database).append(
        [row(1, status="failed"), row(2, status="done"), row(3, status="failed"), row(4)]
    )
    ids = {e.entity_id: e.id for e in await list_events(database)}

    retried = await retry_events(database, [ids[1], ids[2]])
    rest = await retry_all_failed(database)

    assert [ids[1]] == retried
    assert [ids[3]] == rest
    assert [(1, "pending", 0), (2, "done", 0), (3, "pending", 0), (4, "pending", 0)] == (
        await statuses(database)
    )


async def test_bad_filters_are_refused(database: Database) -> None:
    """An unknown status or an out-of-range limit is an error naming what is allowed."""
    with pytest.raises(ValueError, match="pending, done, failed, ignored"):
        await list_events(database, status="broken")
    with pytest.raises(ValueError, match="limit"):
        await list_events(database, limit=0)
