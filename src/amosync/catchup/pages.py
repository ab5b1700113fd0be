"""Walking a list endpoint in `order[field]=asc` by keyset, so pages survive concurrent edits.

Page numbers alone are offsets: when a lead on page 1 is edited during the walk it moves to
the end and everything behind it shifts left, so the first lead of page 2 would be skipped.
Instead each query starts at the newest value seen so far (`filter[field][from]=newest`)
and only the leads sharing that one second are re-read. When a whole page shares one
second (a bulk import or a robot editing hundreds of leads at once), moving the start
would not make progress, so the page number advances within that second instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.amocrm.client import AmoClient, Params
from amosync.catchup.oversize import Listed, Oversize, failed_row, list_apart
from amosync.core.answer import MappedAnswer, map_answer
from amosync.core.mapping import RentProgField, int_id
from amosync.core.plan import MAX_IDS_PER_CALL
from amosync.errors import AnswerTooLarge, RequestRejected
from amosync.inbox.rows import WORKER, append_failed_once, event_row
from amosync.inbox.store import append_rows
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.worker.apply import Applied
from amosync.worker.isolate import store_page_apart

# Contacts and companies first: a lead page then finds its linked contacts stored instead of
# queueing each unknown one for a separate fetch.
ENTITIES = ("contacts", "companies", "leads")


@dataclass(frozen=True)
class Cursor:
    """The next query: `filter[field][from]=start` and `page`."""

    start: int
    page: int = 1

    def as_json(self) -> dict[str, int]:
        return {"start": self.start, "page": self.page}

    @classmethod
    def from_json(cls, value: Any) -> Cursor | None:
        if not isinstance(value, dict):
            return None
        return cls(int(value["start"]), int(value.get("page", 1)))


@dataclass(frozen=True)
class EntityPage:
    objects: list[dict[str, Any]]
    # Mapped when fetched, so storing it runs only statements (core/answer.py says why).
    answer: MappedAnswer
    newest: int  # the largest `field` value on the page
    next: Cursor | None  # None: this was the last page
    # Ids at `newest`: a next page starting at that second returns them again.
    edge_ids: frozenset[int] = frozenset()
    # Entities skipped because their answer alone is over the size cap (catchup/oversize.py).
    oversize: tuple[Oversize, ...] = ()


def following(cursor: Cursor, values: Sequence[int]) -> Cursor:
    """Where the next query starts after a page with these `field` values."""
    newest, oldest = max(values), min(values)
    if newest != oldest:
        return Cursor(newest, 1)
    if newest == cursor.start:
        return Cursor(cursor.start, cursor.page + 1)
    # A uniform page at a later second is the first page of that second.
    return Cursor(newest, 2)


async def fetch_page(
    client: AmoClient, entity: str, field: str, cursor: Cursor, rentprog: RentProgField
) -> EntityPage | None:
    """One page of `entity` ordered by `field`; None when amoCRM has nothing (204).

    A page over the answer size cap is read in smaller pieces, the entity too large alone
    left out (catchup/oversize.py).

    Raises MappingError for an object that is not a usable entity."""
    fetched_at = datetime.now(UTC)
    get = partial(_list, client, entity, field, cursor.start)
    oversize: list[Oversize] = []
    try:
        listed = await get(cursor.page, MAX_IDS_PER_CALL)
    except AnswerTooLarge:
        listed, oversize = await list_apart(get, entity, cursor.page, MAX_IDS_PER_CALL)
    if listed is None:
        return None
    objects = listed.objects
    values = [_int(obj.get(field)) for obj in objects]
    ids = [_int(int_id(obj.get("id"))) for obj in objects]
    answer = map_answer(entity, ids, objects, rentprog, fetched_at=fetched_at)
    named = [o for o in oversize if o.entity_id is not None and field in o.scalars]
    # A skipped entity whose head named it counts as read: the keyset moves as if it were.
    values += [o.scalars[field] for o in named]
    ids += [o.entity_id for o in named if o.entity_id is not None]
    after = None
    if listed.more:
        after = _after_unnamed(cursor, values) if len(named) < len(oversize) else None
        after = after or following(cursor, values)
    newest = max(values, default=cursor.start)
    edge = frozenset(i for i, value in zip(ids, values, strict=True) if value == newest)
    return EntityPage(objects, answer, newest, after, edge, tuple(oversize))


def _after_unnamed(cursor: Cursor, values: Sequence[int]) -> Cursor | None:
    """Where to go on when a skipped entity's `field` value is unknown (its head did not
    name it), or None to go on as usual. Only a uniform page at a later second assumes all
    of its page: the skipped one may lie before that second, so that second is read again
    from its start (never skipping an unread entity; the start still moves forward)."""
    if not values:
        return Cursor(cursor.start, cursor.page + 1)
    after = following(cursor, values)
    if after.page == 2 and after.start != cursor.start:
        return Cursor(after.start, 1)
    return None


async def _list(
    client: AmoClient, entity: str, field: str, start: int, page: int, limit: int
) -> Listed | None:
    """`GET /api/v4/{entity}` from `start` ordered by `field`, at this page and limit."""
    params: Params = [
        (f"filter[{field}][from]", start),
        (f"order[{field}]", "asc"),
        ("limit", limit),
        ("page", page),
    ]
    if entity == "leads":
        # Deal↔contact links come in the same call, exactly as the worker fetches leads.
        params.append(("with", "contacts"))
    path = f"/api/v4/{entity}"
    body = await client.get_json(path, params)
    if body is None:
        return None
    embedded = body.get("_embedded")
    items = embedded.get(entity) if isinstance(embedded, dict) else None
    if not isinstance(items, list):
        raise RequestRejected(f"GET {path}: response has no _embedded.{entity} list", status=200)
    # An id may come as a string ("123"): it is the same entity (core/mapping.int_id).
    objects = [item for item in items if isinstance(item, dict) and int_id(item.get("id"))]
    links = body.get("_links")
    more = isinstance(links, dict) and bool(links.get("next"))
    return Listed(objects, len(items), more) if objects else None


async def store_page(
    conn: AsyncConnection, page: EntityPage, max_skew: float = DEFAULT_MAX_CLOCK_SKEW
) -> Applied:
    """Upsert a page through the worker's own path (newer wins, links, unknown contacts,
    nothing dated beyond the database clock plus `max_skew`).

    An entity the database refuses does not stop the walk: it is left out and queued for
    the worker like a webhook event, whose own isolation fails it with the database's
    reason (or stores it, if it was edited meanwhile)."""
    applied, left_out = await store_page_apart(conn, page.answer, max_skew)
    await append_rows(conn, [_queued(page.answer.entity, i, r) for i, r in left_out.items()])
    await record_oversize(conn, page.oversize)
    return applied


async def record_oversize(conn: AsyncConnection, found: Iterable[Oversize]) -> None:
    """Log each entity skipped as too large and record it failed (once per entity and
    reason, whichever run meets it)."""
    now = datetime.now(UTC)
    for item in found:
        await append_failed_once(conn, failed_row(item, now))


def _queued(entity: str, entity_id: int, reason: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return event_row(
        now=now,
        source=WORKER,
        entity=entity,
        action="catchup",
        entity_id=entity_id,
        payload={"reason": reason},
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
