"""An API answer mapped to records before anything is written.

The worker and catch-up map an answer first and open the transaction after, so the mapping's
Python does not run inside it: on SQLite every write of the process takes turns
(db/turns.py), and webhook commits wait while a transaction is open. Mapping 60 leads is
~2 ms of a ~16 ms upsert transaction on a 2-core VM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amosync.core.mapping import RentProgField, map_contact, map_lead, map_lead_links
from amosync.core.records import ContactRecord, DealContactLink, DealRecord


@dataclass(frozen=True, slots=True)
class MappedAnswer:
    entity: str  # "leads", "contacts" or "companies"
    returned: int  # objects amoCRM returned
    gone: frozenset[int]  # ids asked for that it did not return
    deals: Sequence[DealRecord]  # for "leads"
    links: Mapping[int, Sequence[DealContactLink]]  # each returned deal's contacts, by deal id
    people: Sequence[ContactRecord]  # for "contacts" and "companies"


def map_answer(
    entity: str,
    requested: Sequence[int],
    objects: Sequence[dict[str, Any]],
    rentprog: RentProgField,
) -> MappedAnswer:
    """Raises MappingError (core.mapping) for an object that is not a usable entity."""
    gone = frozenset(requested) - {obj["id"] for obj in objects}
    if entity == "leads":
        deals = [map_lead(obj, rentprog) for obj in objects]
        links = {deal.id: map_lead_links(obj) for deal, obj in zip(deals, objects, strict=True)}
        return MappedAnswer(entity, len(objects), gone, deals, links, ())
    people = [map_contact(obj) for obj in objects]
    return MappedAnswer(entity, len(objects), gone, (), {}, people)
