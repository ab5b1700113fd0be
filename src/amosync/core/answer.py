"""An API answer mapped to records before anything is written.

The worker and catch-up map an answer first and open the transaction after, so the mapping's
Python does not run inside it: on SQLite every write of the process takes turns
(db/turns.py), and webhook commits wait while a transaction is open. Mapping 60 leads is
~2 ms of a ~16 ms upsert transaction on a 2-core VM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from amosync.core.mapping import RentProgField, map_contact, map_lead, map_lead_links
from amosync.core.records import ContactRecord, DealContactLink, DealRecord


@dataclass(frozen=True, slots=True)
class MappedAnswer:
    entity: str  # "leads", "contacts" or "companies"
    returned: int  # objects amoCRM returned
    # Ids asked for that the list answer did not contain. Not proof of a deletion (an id
    # the token's user cannot see is left out too): the worker asks for each one alone.
    gone: frozenset[int]
    deals: Sequence[DealRecord]  # for "leads"
    links: Mapping[int, Sequence[DealContactLink]]  # each returned deal's contacts, by deal id
    people: Sequence[ContactRecord]  # for "contacts" and "companies"
    # When the request was sent: a copy fetched before a deletion flag was set cannot
    # clear it (upsert/newer_wins.py).
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Ids proven deleted (a single-id fetch answered 204/404): the only ones flagged.
    deleted: frozenset[int] = frozenset()

    @property
    def ids(self) -> frozenset[int]:
        """The ids whose state this answer carries."""
        records: Sequence[DealRecord | ContactRecord] = self.deals or self.people
        return frozenset(r.id for r in records)


def map_answer(
    entity: str,
    requested: Sequence[int],
    objects: Sequence[dict[str, Any]],
    rentprog: RentProgField,
    *,
    fetched_at: datetime | None = None,
) -> MappedAnswer:
    """Raises MappingError (core.mapping) for an object that is not a usable entity."""
    when = fetched_at or datetime.now(UTC)
    if entity == "leads":
        deals = [map_lead(obj, rentprog) for obj in objects]
        links = {deal.id: map_lead_links(obj) for deal, obj in zip(deals, objects, strict=True)}
        gone = frozenset(requested) - {deal.id for deal in deals}
        return MappedAnswer(entity, len(objects), gone, deals, links, (), when)
    people = [map_contact(obj) for obj in objects]
    gone = frozenset(requested) - {person.id for person in people}
    return MappedAnswer(entity, len(objects), gone, (), {}, people, when)


def future_ids(answer: MappedAnswer, limit: datetime) -> frozenset[int]:
    """Ids whose `updated_at`, `created_at` or `closed_at` lies after `limit` (the database
    clock plus the allowed skew): such a state would win newer-wins for ever."""
    future: set[int] = set()
    for deal in answer.deals:
        if _after(limit, deal.updated_at, deal.created_at, deal.closed_at):
            future.add(deal.id)
    for person in answer.people:
        if _after(limit, person.updated_at, person.created_at):
            future.add(person.id)
    return frozenset(future)


def without(answer: MappedAnswer, ids: frozenset[int]) -> MappedAnswer:
    """The answer with nothing about these ids: not stored, not flagged."""
    if not ids:
        return answer
    return replace(
        answer,
        gone=answer.gone - ids,
        deleted=answer.deleted - ids,
        deals=[d for d in answer.deals if d.id not in ids],
        links={i: links for i, links in answer.links.items() if i not in ids},
        people=[p for p in answer.people if p.id not in ids],
    )


def _after(limit: datetime, *moments: datetime | None) -> bool:
    return any(moment is not None and moment > limit for moment in moments)
