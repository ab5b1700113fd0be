"""Between fetch and apply: what of an answer the worker may store now, and what waits.

Two kinds of ids wait, their events going back to the queue with the reason (and failing
with it once out of attempts), while the rest of the batch is stored:
- an id missing from the list answer whose deletion could not be proven (worker/deletions.py);
- an id whose state is dated beyond the database clock plus `max_clock_skew`: stored, it
  would win newer-wins against every real change after it. Retrying lets a clock that was
  briefly wrong (amoCRM's or ours) settle; the event fails with the reason otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from amosync.amocrm.client import AmoClient
from amosync.core.answer import MappedAnswer, future_ids, without
from amosync.core.mapping import RentProgField
from amosync.core.plan import ClaimedEvent, FetchChunk
from amosync.db.database import Database
from amosync.worker.deletions import confirm_missing


@dataclass(frozen=True, slots=True)
class Reviewed:
    answer: MappedAnswer  # what may be stored now
    held: Mapping[int, str]  # entity id → why its events wait for another try

    def held_events(
        self, chunk: FetchChunk, events: Mapping[int, ClaimedEvent]
    ) -> dict[str, list[int]]:
        """The chunk's events about held ids, by reason."""
        by_reason: dict[str, list[int]] = defaultdict(list)
        for event_id in chunk.event_ids:
            entity_id = events[event_id].entity_id
            if entity_id is not None and entity_id in self.held:
                by_reason[self.held[entity_id]].append(event_id)
        return dict(by_reason)

    def remaining(self, chunk: FetchChunk, events: Mapping[int, ClaimedEvent]) -> FetchChunk:
        """The chunk without the held ids and their events."""
        if not self.held:
            return chunk
        return FetchChunk(
            chunk.entity,
            tuple(i for i in chunk.ids if i not in self.held),
            tuple(e for e in chunk.event_ids if events[e].entity_id not in self.held),
        )


async def review_answer(
    client: AmoClient,
    db: Database,
    answer: MappedAnswer,
    rentprog: RentProgField,
    max_skew: float,
) -> Reviewed:
    confirmed = await confirm_missing(client, answer, rentprog)
    held = dict(confirmed.held)
    limit = await db.now() + timedelta(seconds=max_skew)
    for entity_id in future_ids(confirmed.answer, limit):
        held[entity_id] = _future_reason(confirmed.answer, entity_id, max_skew)
    return Reviewed(without(confirmed.answer, frozenset(held)), held)


def _future_reason(answer: MappedAnswer, entity_id: int, max_skew: float) -> str:
    moments: list[datetime | None] = []
    for deal in answer.deals:
        if deal.id == entity_id:
            moments += [deal.updated_at, deal.created_at, deal.closed_at]
    for person in answer.people:
        if person.id == entity_id:
            moments += [person.updated_at, person.created_at]
    latest = max((m for m in moments if m is not None), default=None)
    shown = f" ({latest.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)" if latest else ""
    return (
        f"amoCRM dated {answer.entity} {entity_id}{shown} more than {max_skew:.0f} s ahead "
        "of the database clock (AMOSYNC_MAX_CLOCK_SKEW): not stored"
    )
