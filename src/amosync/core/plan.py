"""Turn a batch of claimed inbox events into the fewest API calls that refresh them all."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from amosync.core.events import SYNCED_ENTITIES

# amoCRM returns at most 250 entities per list call (`limit` ≤ 250).
MAX_IDS_PER_CALL = 250


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """The part of an inbox row the worker needs."""

    id: int
    entity: str
    action: str
    entity_id: int | None
    attempts: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FetchChunk:
    """One API call: these ids of this entity, and the events it settles."""

    entity: str
    ids: tuple[int, ...]
    event_ids: tuple[int, ...]


@dataclass(slots=True)
class FetchPlan:
    chunks: list[FetchChunk] = field(default_factory=list)
    # Events with nothing to fetch (a synced kind without an id can only come from a bug or
    # a hand-edited row); the worker fails them with a reason instead of looping on them.
    unfetchable: list[int] = field(default_factory=list)


def plan_fetch(events: list[ClaimedEvent]) -> FetchPlan:
    """Collapse events naming the same entity and group ids into calls of ≤ 250.

    Ten `update`s of lead 5 and one `status` of lead 5 become one id in one call; the call's
    result settles all eleven events.
    """
    by_entity: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    plan = FetchPlan()
    for event in events:
        if event.entity not in SYNCED_ENTITIES or event.entity_id is None:
            plan.unfetchable.append(event.id)
            continue
        by_entity[event.entity][event.entity_id].append(event.id)
    for entity in sorted(by_entity):
        ids = sorted(by_entity[entity])
        for start in range(0, len(ids), MAX_IDS_PER_CALL):
            chunk_ids = tuple(ids[start : start + MAX_IDS_PER_CALL])
            event_ids = tuple(e for i in chunk_ids for e in by_entity[entity][i])
            plan.chunks.append(FetchChunk(entity, chunk_ids, event_ids))
    return plan


def distinct_entities(events: list[ClaimedEvent]) -> dict[str, int]:
    """How many distinct ids per entity a batch names: the worker lingers until one is full."""
    seen: dict[str, set[int]] = defaultdict(set)
    for event in events:
        if event.entity_id is not None:
            seen[event.entity].add(event.entity_id)
    return {entity: len(ids) for entity, ids in seen.items()}
