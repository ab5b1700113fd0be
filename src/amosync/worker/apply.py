"""Apply one API answer: upsert what came back, flag what did not, settle the events.

All of it happens in one transaction, so an event is `done` exactly when its entity's new
state is stored: a crash between the two cannot happen. The answer comes mapped already
(core/answer.py), so the transaction holds only statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.answer import MappedAnswer, future_ids, without
from amosync.core.mapping import lead_company_ids
from amosync.core.records import DealRecord
from amosync.db.clock import database_now
from amosync.db.tables import companies, contacts
from amosync.inbox.rows import WORKER, event_row
from amosync.inbox.store import DONE, append_rows, settle
from amosync.inbox.superseded import settle_superseded
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.upsert import (
    mark_deals_deleted,
    mark_people_deleted,
    missing_ids,
    replace_deal_links,
    upsert_deals,
    upsert_people,
)

_PEOPLE = {"contacts": contacts, "companies": companies}


@dataclass(frozen=True, slots=True)
class Applied:
    written: int  # rows inserted or updated
    stale: int  # copies not written: the stored row is newer, or the same
    deleted: int  # rows newly flagged deleted (proven deletions only)
    contacts_queued: int  # linked contacts and companies we had never stored, queued for a fetch
    future: int = 0  # copies refused: a timestamp beyond the database clock plus the skew
    superseded: int = 0  # failed events settled because this answer was stored


async def apply_fetched(
    conn: AsyncConnection,
    answer: MappedAnswer,
    event_ids: Sequence[int],
    *,
    max_skew: float = DEFAULT_MAX_CLOCK_SKEW,
) -> Applied:
    """Store `answer` and settle `event_ids` done.

    Whatever the source (worker, catch-up, backfill), nothing dated more than `max_skew`
    seconds after the database clock is stored: such a state would win newer-wins for ever.
    The worker takes those ids out of the answer first and retries their events
    (worker/review.py); here they are refused for every caller.
    """
    now = datetime.now(UTC)
    limit = await database_now(conn) + timedelta(seconds=max_skew)
    future = future_ids(answer, limit)
    answer = without(answer, future)
    guard = {"fetched_at": answer.fetched_at, "future_limit": limit}
    queued = 0
    if answer.entity == "leads":
        written = await upsert_deals(conn, answer.deals, now, **guard)
        links = [
            link for deal in answer.deals if deal.id in written for link in answer.links[deal.id]
        ]
        await replace_deal_links(conn, written, links)
        flagged = await mark_deals_deleted(conn, answer.deleted, now)
        queued = await queue_unknown_contacts(conn, {link.contact_id for link in links}, now)
        queued += await queue_unknown_companies(conn, linked_companies(answer.deals, written), now)
    else:
        table = _PEOPLE[answer.entity]
        written = await upsert_people(conn, table, answer.people, now, **guard)
        flagged = await mark_people_deleted(conn, table, answer.deleted, now)
    superseded = await settle_superseded(
        conn, answer.entity, answer.ids | answer.deleted, answer.fetched_at
    )
    await settle(conn, event_ids, DONE)
    stored = len(answer.deals) + len(answer.people)
    return Applied(len(written), stored - len(written), flagged, queued, len(future), superseded)


async def queue_unknown_contacts(
    conn: AsyncConnection, contact_ids: set[int], now: datetime
) -> int:
    """A deal links contacts we have never stored: queue them like webhook events.

    Going through the inbox keeps the fetch durable and batched with everything else. A
    contact amoCRM does not have leaves no row, so it is asked for again when a deal linking
    it changes (amoCRM leaves deleted contacts out of a lead's links, so that is rare).
    """
    return await _queue_unknown(conn, "contacts", contact_ids, now)


async def queue_unknown_companies(
    conn: AsyncConnection, company_ids: set[int], now: datetime
) -> int:
    """A deal names companies (`_embedded.companies`) we have never stored: queue them, as
    for contacts, so the worker fetches them in its next batch of companies."""
    return await _queue_unknown(conn, "companies", company_ids, now)


def linked_companies(deals: Sequence[DealRecord], written: set[int]) -> set[int]:
    """The companies named by the deals just written."""
    return {cid for deal in deals if deal.id in written for cid in lead_company_ids(deal.raw)}


async def _queue_unknown(conn: AsyncConnection, entity: str, ids: set[int], now: datetime) -> int:
    unknown = await missing_ids(conn, _PEOPLE[entity], ids)
    rows = [
        event_row(
            now=now,
            source=WORKER,
            entity=entity,
            action="linked",
            entity_id=entity_id,
            payload={"reason": "linked to a stored deal"},
        )
        for entity_id in sorted(unknown)
    ]
    await append_rows(conn, rows)
    return len(rows)
