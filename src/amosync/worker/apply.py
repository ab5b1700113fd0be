"""Apply one API answer: upsert what came back, flag what did not, settle the events.

All of it happens in one transaction, so an event is `done` exactly when its entity's new
state is stored: a crash between the two cannot happen. The answer comes mapped already
(core/answer.py), so the transaction holds only statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.answer import MappedAnswer
from amosync.db.tables import companies, contacts
from amosync.inbox.store import DONE, PENDING, append_rows, settle
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
    stale: int  # copies refused because the stored row is newer
    deleted: int  # ids amoCRM did not return
    contacts_queued: int  # linked contacts we had never stored, queued for a fetch


async def apply_fetched(
    conn: AsyncConnection, answer: MappedAnswer, event_ids: Sequence[int]
) -> Applied:
    now = datetime.now(UTC)
    queued = 0
    if answer.entity == "leads":
        written = await upsert_deals(conn, answer.deals, now)
        links = [
            link for deal in answer.deals if deal.id in written for link in answer.links[deal.id]
        ]
        await replace_deal_links(conn, written, links)
        await mark_deals_deleted(conn, answer.gone, now)
        queued = await _queue_unknown_contacts(conn, {link.contact_id for link in links}, now)
    else:
        table = _PEOPLE[answer.entity]
        written = await upsert_people(conn, table, answer.people, now)
        await mark_people_deleted(conn, table, answer.gone, now)
    await settle(conn, event_ids, DONE)
    return Applied(len(written), answer.returned - len(written), len(answer.gone), queued)


async def _queue_unknown_contacts(
    conn: AsyncConnection, contact_ids: set[int], now: datetime
) -> int:
    """A deal links contacts we have never stored: queue them like webhook events.

    Going through the inbox keeps the fetch durable and batched with everything else; a
    contact amoCRM does not return is stored as a deletion stub, so it is asked for once.
    """
    unknown = await missing_ids(conn, contacts, contact_ids)
    rows = [
        {
            "received_at": now,
            "source": "worker",
            "request_id": None,
            "entity": "contacts",
            "action": "linked",
            "entity_id": cid,
            "account_id": None,
            "entity_updated_at": None,
            "payload": {"reason": "linked to a stored deal"},
            "status": PENDING,
            "attempts": 0,
            "available_at": now,
        }
        for cid in sorted(unknown)
    ]
    await append_rows(conn, rows)
    return len(rows)
