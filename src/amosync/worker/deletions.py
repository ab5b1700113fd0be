"""Deleted only on proof: an id a list answer left out is asked for on its own.

`GET /api/v4/leads?filter[id][]=…` leaves out deleted leads, but also leads the token's
user may not see, and an answer may write ids as strings. Flagging every id missing from
it made false deletions, so each missing id gets one `GET /api/v4/leads/{id}`:

    204 / 404   proof: the entity does not exist; its row (if any) is flagged deleted
    200         the entity exists: it is stored like any other copy
    an error    no proof either way: its events are retried later

A `leads[delete]` webhook takes the same path (its lead is missing from the list answer),
and catch-up's deletion events (catchup/deletions.py) are proof of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from amosync.amocrm.client import AmoClient
from amosync.core.answer import MappedAnswer, map_answer
from amosync.core.mapping import RentProgField, int_id
from amosync.errors import RequestRejected, RetryLater

# Single-id calls one answer may cost (7 requests/s): a bulk deletion of 250 leads is
# confirmed over several batches instead of one minute-long stall; the rest wait.
MAX_SINGLE_FETCHES = 50


@dataclass(frozen=True, slots=True)
class Confirmed:
    # `gone` holds only what is still unresolved; `deleted` what is proven.
    answer: MappedAnswer
    held: Mapping[int, str]  # entity id → why its events wait for another try


async def confirm_missing(
    client: AmoClient, answer: MappedAnswer, rentprog: RentProgField
) -> Confirmed:
    """Ask for each id the answer is missing alone. Raises what the client raises for the
    whole account (ReauthRequired, IPBlocked), and MappingError for an unusable object."""
    found: list[dict[str, Any]] = []
    proven: set[int] = set()
    held: dict[int, str] = {}
    for n, entity_id in enumerate(sorted(answer.gone)):
        if n >= MAX_SINGLE_FETCHES:
            held[entity_id] = "missing from amoCRM's list answer; not confirmed yet (too many)"
            continue
        try:
            obj = await client.fetch_one(answer.entity, entity_id)
        except (RetryLater, RequestRejected) as exc:
            held[entity_id] = f"missing from amoCRM's list answer; fetching it alone: {exc}"
            continue
        if obj is None:
            proven.add(entity_id)
        elif int_id(obj.get("id")) != entity_id:
            held[entity_id] = "missing from amoCRM's list answer; fetching it alone gave another id"
        else:
            found.append(obj)
    extra = map_answer(answer.entity, [], found, rentprog, fetched_at=answer.fetched_at)
    merged = replace(
        answer,
        returned=answer.returned + extra.returned,
        gone=frozenset(held),
        deleted=answer.deleted | proven,
        deals=[*answer.deals, *extra.deals],
        links={**answer.links, **extra.links},
        people=[*answer.people, *extra.people],
    )
    return Confirmed(merged, held)
