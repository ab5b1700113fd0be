"""core/plan.py: a batch of claimed events becomes the fewest API calls."""

from __future__ import annotations

from datetime import UTC, datetime

from amosync.core.plan import (
    MAX_IDS_PER_CALL,
    ClaimedEvent,
    FetchChunk,
    distinct_entities,
    plan_fetch,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)


def event(
    event_id: int, entity: str, entity_id: int | None, action: str = "update"
) -> ClaimedEvent:
    return ClaimedEvent(event_id, entity, action, entity_id, 0, AT)


def test_events_naming_one_entity_collapse_into_one_id() -> None:
    """Ten updates and a status change of lead 5 are one id; the call settles all eleven."""
    events = [event(n, "leads", 5) for n in range(1, 11)] + [event(11, "leads", 5, "status")]

    plan = plan_fetch(events)

    assert [FetchChunk("leads", (5,), tuple(range(1, 12)))] == plan.chunks
    assert [] == plan.unfetchable


def test_entities_get_their_own_calls_in_a_stable_order() -> None:
    events = [event(1, "leads", 9), event(2, "contacts", 3), event(3, "leads", 2)]

    plan = plan_fetch(events)

    assert [
        FetchChunk("contacts", (3,), (2,)),
        FetchChunk("leads", (2, 9), (3, 1)),
    ] == plan.chunks


def test_ids_are_split_into_calls_of_at_most_250() -> None:
    events = [event(n, "leads", n) for n in range(1, MAX_IDS_PER_CALL * 2 + 2)]

    plan = plan_fetch(events)

    assert [MAX_IDS_PER_CALL, MAX_IDS_PER_CALL, 1] == [len(c.ids) for c in plan.chunks]
    assert sorted(e for c in plan.chunks for e in c.event_ids) == [e.id for e in events]


def test_an_event_with_nothing_to_fetch_is_unfetchable_not_dropped() -> None:
    """No id, or a kind we do not sync: the worker fails it with a reason."""
    plan = plan_fetch([event(1, "leads", None), event(2, "tasks", 4), event(3, "leads", 1)])

    assert [1, 2] == plan.unfetchable
    assert [FetchChunk("leads", (1,), (3,))] == plan.chunks


def test_distinct_entities_counts_ids_not_events() -> None:
    events = [event(1, "leads", 5), event(2, "leads", 5), event(3, "leads", 6)]
    events += [event(4, "contacts", 1), event(5, "contacts", None)]

    assert {"leads": 2, "contacts": 1} == distinct_entities(events)
