"""A list page made too large by one entity is read in smaller pieces; that entity is skipped.

The client refuses an answer over AMOSYNC_API_MAX_ANSWER_BYTES, and a catch-up or backfill
page is asked for at the same cursor until it succeeds: one lead with megabytes of custom
fields stopped every run at that page until someone edited the lead. Instead the page's
window (the same `filter[…][from]`, offsets `(page-1)·250` to `page·250`) is asked for again
with a smaller `limit`, split by its smallest prime factor each time (250 → 125 → 25 → 5 → 1,
so every piece's offset is a whole page at its own limit), down to the one entity whose
answer alone is too large. Pieces come in order, so the window reads exactly what the whole
page would have held, minus that entity.

That entity is not stored: it is named from the first bytes of its refused answer (amoCRM
lists `id`, `created_at` and `updated_at` before the custom fields), logged, and recorded as
a failed event with the reason, where failed events are seen (status, doctor, the page).
One is recorded per entity and reason, however many runs meet it.

Cost: a window with one such entity takes ≤ 1 + 2 + 5 + 5 + 5 = 18 calls instead of 1.
Nothing is remembered between runs: the next run that reads this window again (the overlap,
or no newer change moving the watermark past it) splits it again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from amosync.errors import AnswerTooLarge
from amosync.inbox.rows import WORKER, event_row
from amosync.inbox.store import FAILED

log = logging.getLogger(__name__)

_DATES = ("created_at", "updated_at")  # kept in the failed event's payload
# A scalar `"key": value` of an object's flat head (stops at its first object or list).
_SCALAR = re.compile(rb'\s*"(\w+)"\s*:\s*(-?\d+|null|true|false|"(?:[^"\\]|\\.)*")\s*,?')


@dataclass(frozen=True)
class Listed:
    """One list answer: its usable objects, how many items it had, whether `_links.next`."""

    objects: list[dict[str, Any]]
    count: int
    more: bool


@dataclass(frozen=True)
class Oversize:
    """An entity whose answer alone is over the cap; what its refused answer's head said."""

    entity: str
    entity_id: int | None  # None: the head did not name it
    scalars: dict[str, int] = field(default_factory=dict)  # its integer scalars (dates)
    reason: str = ""


# (page, limit) → the answer at that page and limit of the same query; None when empty.
Get = Callable[[int, int], Awaitable[Listed | None]]


async def list_apart(
    get: Get, entity: str, page: int, limit: int
) -> tuple[Listed | None, list[Oversize]]:
    """The objects of `get(page, limit)`, asked for in smaller pieces (the module doc says
    why), and the entities too large alone."""
    objects: list[dict[str, Any]] = []
    oversize: list[Oversize] = []
    count, more = 0, False

    async def walk(offset: int, size: int) -> bool:
        """Read [offset, offset + size); False when the list ends there."""
        nonlocal count, more
        try:
            listed = await get(offset // size + 1, size)
        except AnswerTooLarge as exc:
            if size > 1:
                step = size // _smallest_factor(size)
                for start in range(offset, offset + size, step):
                    if not await walk(start, step):
                        return False
                return True
            found, more = read_head(exc.head, entity)
            oversize.append(Oversize(entity, found.pop("id", None), found, str(exc)))
            count += 1
            return more
        if listed is None:
            more = False
            return False
        objects.extend(listed.objects)
        count += listed.count
        more = listed.more
        return more

    await walk((page - 1) * limit, limit)
    listed = Listed(objects, count, more) if count else None
    return listed, oversize


def read_head(head: bytes, entity: str) -> tuple[dict[str, int], bool]:
    """The integer scalars before the first object's first nested value (`id`, `updated_at`,
    `created_at`…), and whether `_links` (listed before `_embedded`) has a `next` page; an
    unreadable head says nothing and assumes more."""
    start = re.search(rb'"_embedded"\s*:\s*\{\s*"' + entity.encode() + rb'"\s*:\s*\[\s*\{', head)
    if start is None:
        return {}, True
    found: dict[str, int] = {}
    pos = start.end()
    while (pair := _SCALAR.match(head, pos)) is not None:
        # An id may come as a string ("123"): it is the same entity (core/mapping.int_id).
        raw = pair.group(2).strip(b'"')
        if raw.lstrip(b"-").isdigit():
            found[pair.group(1).decode()] = int(raw)
        pos = pair.end()
    return found, b'"next"' in head[: start.start()]


def failed_row(item: Oversize, now: datetime) -> dict[str, Any]:
    """The failed event that shows the entity where failed events show, with the reason."""
    log.warning(
        "entity_too_large",
        extra={
            "event": "entity_too_large",
            "entity": item.entity,
            "entity_id": item.entity_id,
            "error": item.reason,
        },
    )
    dates = {k: v for k, v in item.scalars.items() if k in _DATES}
    row = event_row(
        now=now,
        source=WORKER,
        entity=item.entity,
        action="catchup",
        entity_id=item.entity_id,
        payload={"reason": "too_large", **dates},
    )
    row.update(status=FAILED, last_error=item.reason, processed_at=now)
    return row


def _smallest_factor(n: int) -> int:
    return next(f for f in range(2, n + 1) if n % f == 0)
