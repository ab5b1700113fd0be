"""Apply one API answer: upsert what came back, flag what did not, settle the events.

All of it happens in one transaction, so an event is `done` exactly when its entity's new
state is stored: a crash between the two cannot happen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.core.mapping import RentProgField, map_contact, map_lead, map_lead_links
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
    conn: AsyncConnection,
    entity: str,
    requested: Sequence[int],
    objects: Sequence[dict[str, Any]],
    event_ids: Sequence[int],
    rentprog: RentProgField,
) -> Applied:
    now = datetime.now(UTC)
    returned = {obj["id"] for obj in objects}
    gone = set(requested) - returned
    queued = 0
    if entity == "leads":
        records = [map_lead(obj, rentprog) for obj in objects]
        written = await upsert_deals(conn, records, now)
        links = [link for obj in objects if obj["id"] in written for link in map_lead_links(obj)]
        await replace_deal_links(conn, written, links)
        await mark_deals_deleted(conn, gone, now)
        queued = await _queue_unknown_contacts(conn, {link.contact_id for link in links}, now)
    else:
        table = _PEOPLE[entity]
        people = [map_contact(obj) for obj in objects]
        written = await upsert_people(conn, table, people, now)
        await mark_people_deleted(conn, table, gone, now)
    await settle(conn, event_ids, DONE)
    return Applied(len(written), len(objects) - len(written), len(gone), queued)


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
