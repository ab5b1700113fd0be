"""Verification: compare stored deals and contacts with amoCRM and repair what differs.

Webhooks get lost and catch-up only sees what amoCRM lists as changed, so the copy proves
its accuracy by asking: stored ids go to amoCRM 250 per call (the client's
`fetch_by_ids`), each answer is mapped like the worker maps it, and every stored row is
compared column by column with the mapped copy (`updated_at`, `is_deleted`, the mapped
columns, the RentProg ID, and a deal's contact links). A diverging row is overwritten with
amoCRM's copy (upsert/overwrite.py: amoCRM is the truth, even against a stored
`updated_at` from the future), then read back: "repaired" means the re-read row matches.

An id a batch answer leaves out is not taken for deleted: it is asked alone
(`GET /api/v4/{entity}/{id}`), and only 204 or 404 confirm the deletion.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from amosync import metrics
from amosync.amocrm.client import AmoClient
from amosync.catchup.oversize import Oversize
from amosync.catchup.pages import record_oversize
from amosync.catchup.verify_select import TABLES, forget_verified, mark_verified
from amosync.core.answer import MappedAnswer, map_answer
from amosync.core.mapping import RentProgField, int_id
from amosync.core.plan import MAX_IDS_PER_CALL
from amosync.db.database import Database
from amosync.db.tables import deal_contacts
from amosync.upsert import replace_deal_embedded, replace_deal_links, replace_field_values
from amosync.upsert.overwrite import flag_deleted, overwrite_row
from amosync.upsert.rows import record_rows
from amosync.upsert.stage_history import StoredStage, record_stage_changes
from amosync.worker.apply import (
    linked_companies,
    queue_unknown_companies,
    queue_unknown_contacts,
)
from amosync.worker.isolate import fetch_ids_apart

MAX_EXAMPLES = 10
# Compared besides the record's columns: a deal's links to its contacts.
LINKS = "contacts"
# Not compared: the raw answer (amoCRM adds links and embedded objects that change with the
# request) and our own write time.
_NOT_COMPARED = frozenset({"id", "raw", "synced_at"})

_GONE, _UNCLEAR = object(), object()  # what a single-id GET can say besides the entity

# Asked before each extra single-id call; False leaves the id unconfirmed (budget spent).
MayCall = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class Divergence:
    entity: str
    id: int
    fields: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "id": self.id, "fields": self.fields}


@dataclass
class VerifyReport:
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    checked: int = 0  # stored rows compared with amoCRM's answer
    diverged: int = 0  # rows that differed
    repaired: int = 0  # diverged rows that match amoCRM when read back after the write
    unrepaired: int = 0  # diverged rows that still differ after the write
    changed_meanwhile: int = 0  # diverged rows another writer changed first: checked again
    # Ids a batch left out, not asked alone (budget), or too large alone (recorded
    # failed, catchup/oversize.py): checked again next time.
    unconfirmed: int = 0
    calls: int = 0  # API requests sent (retries not counted)
    examples: list[Divergence] = field(default_factory=list)

    def add(self, other: VerifyReport) -> None:
        for name in (
            "checked",
            "diverged",
            "repaired",
            "unrepaired",
            "changed_meanwhile",
            "unconfirmed",
            "calls",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.examples.extend(other.examples[: MAX_EXAMPLES - len(self.examples)])

    def as_json(self) -> dict[str, Any]:
        """The shape stored under `verify.last` (catchup/verify_state.py): `at`, `checked`,
        `diverged`, `repaired`, `unrepaired`, `examples` are the contract /health reads."""
        return {
            "at": (self.finished_at or datetime.now(UTC)).isoformat(),
            "started_at": self.started_at.isoformat(),
            "checked": self.checked,
            "diverged": self.diverged,
            "repaired": self.repaired,
            "unrepaired": self.unrepaired,
            "changed_meanwhile": self.changed_meanwhile,
            "unconfirmed": self.unconfirmed,
            "calls": self.calls,
            "examples": [d.as_json() for d in self.examples[:MAX_EXAMPLES]],
        }


class Verifier:
    def __init__(
        self,
        db: Database,
        client: AmoClient,
        rentprog: RentProgField,
        *,
        may_call: MayCall | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._rentprog = rentprog
        self._may_call = may_call

    async def verify(self, entity: str, ids: Sequence[int]) -> VerifyReport:
        """Verify these stored ids (any number: 250 per call) and repair what differs."""
        report = VerifyReport()
        for start in range(0, len(ids), MAX_IDS_PER_CALL):
            report.add(await self._batch(entity, list(ids[start : start + MAX_IDS_PER_CALL])))
        report.finished_at = datetime.now(UTC)
        return report

    async def _batch(self, entity: str, ids: list[int]) -> VerifyReport:
        report = VerifyReport()
        if not ids:
            return report
        # Read before asking: the repair's compare-and-set then also catches a write made
        # while amoCRM was answering.
        stored = await self._read(entity, ids)
        # An entity whose answer alone is over the size cap is left out (not checked, not
        # taken for deleted) and recorded failed, instead of failing every verify run.
        objects, too_large = await fetch_ids_apart(self._client, entity, ids)
        report.calls += 1
        if too_large:
            ids = [i for i in ids if i not in too_large]
            async with self._db.write() as conn:
                await record_oversize(
                    conn, [Oversize(entity, i, {}, r) for i, r in too_large.items()]
                )
        unconfirmed = await self._ask_missing_alone(entity, ids, stored, objects, report)
        report.unconfirmed = len(unconfirmed) + len(too_large)
        resolved = [i for i in ids if i not in unconfirmed]
        answer = map_answer(entity, resolved, objects, self._rentprog)
        wanted = _wanted_rows(answer)
        diverged: dict[int, list[str]] = {}
        for entity_id in resolved:
            if entity_id in stored:
                report.checked += 1
                differs = _differences(stored[entity_id], wanted.get(entity_id))
                if differs:
                    diverged[entity_id] = differs
        report.diverged = len(diverged)
        written = await self._repair(entity, answer, wanted, stored, diverged)
        still = await self._count_repairs(entity, diverged, wanted, written, report)
        done = [i for i in resolved if i in stored and i not in still]
        async with self._db.write() as conn:
            await mark_verified(conn, entity, done, datetime.now(UTC))
            await forget_verified(conn, entity, still)
        metrics.verify_counted(entity, report.checked, report.diverged, report.repaired)
        return report

    async def _ask_missing_alone(
        self,
        entity: str,
        ids: list[int],
        stored: Mapping[int, dict[str, Any]],
        objects: list[dict[str, Any]],
        report: VerifyReport,
    ) -> set[int]:
        """Ask each id the batch left out alone (adding what comes back to `objects`);
        returns the ids left unconfirmed (budget spent, or an unclear answer)."""
        unconfirmed: set[int] = set()
        # Compared as integers: an answer may write an id as a string ("123").
        for entity_id in sorted(set(ids) - {int_id(obj.get("id")) for obj in objects}):
            row = stored.get(entity_id)
            if row is None or row["is_deleted"]:
                # Stored deleted and not listed: both sides agree, no call needed (deleted
                # rows are kept forever; asking each alone would make `--all` cost one
                # call per deleted deal).
                continue
            if self._may_call is not None and not await self._may_call():
                unconfirmed.add(entity_id)
                continue
            alone = await self._fetch_alone(entity, entity_id)
            report.calls += 1
            if isinstance(alone, dict):
                objects.append(alone)
            elif alone is _UNCLEAR:
                unconfirmed.add(entity_id)
        return unconfirmed

    async def _count_repairs(
        self,
        entity: str,
        diverged: Mapping[int, list[str]],
        wanted: Mapping[int, dict[str, Any]],
        written: set[int],
        report: VerifyReport,
    ) -> set[int]:
        """Read the diverged rows back: repaired when they now match amoCRM's copy. Returns
        the ids that still differ (not marked verified, so they come first next time)."""
        after = await self._read(entity, sorted(diverged))
        still: set[int] = set()
        for entity_id, fields in diverged.items():
            if len(report.examples) < MAX_EXAMPLES:
                report.examples.append(Divergence(entity, entity_id, fields))
            reread = after.get(entity_id)
            if reread is not None and not _differences(reread, wanted.get(entity_id)):
                report.repaired += 1
                continue
            still.add(entity_id)
            if entity_id in written:
                report.unrepaired += 1
            else:
                report.changed_meanwhile += 1
        return still

    async def _fetch_alone(self, entity: str, entity_id: int) -> dict[str, Any] | object:
        """The entity asked by id (the client's `fetch_one`); `_GONE` when amoCRM confirms
        it is gone (204 or 404, or the object flagged deleted), `_UNCLEAR` when the answer
        names another id."""
        body = await self._client.fetch_one(entity, entity_id)
        if body is None or body.get("is_deleted") is True:
            return _GONE
        return body if int_id(body.get("id")) == entity_id else _UNCLEAR

    async def _read(self, entity: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Stored rows (raw excluded) by id, deals with their links under `contacts`."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        table = TABLES[entity]
        columns = [c for c in table.columns if c.name != "raw"]
        async with self._db.read() as conn:
            rows = await conn.execute(select(*columns).where(table.c.id.in_(wanted)))
            found = {int(r.id): dict(r._mapping) for r in rows}
            if entity == "leads":
                for row in found.values():
                    row[LINKS] = set()
                links = await conn.execute(
                    select(
                        deal_contacts.c.deal_id, deal_contacts.c.contact_id, deal_contacts.c.is_main
                    ).where(deal_contacts.c.deal_id.in_(wanted))
                )
                for deal_id, contact_id, is_main in links:
                    found[int(deal_id)][LINKS].add((int(contact_id), bool(is_main)))
        return found

    async def _repair(
        self,
        entity: str,
        answer: MappedAnswer,
        wanted: Mapping[int, dict[str, Any]],
        stored: Mapping[int, dict[str, Any]],
        diverged: Mapping[int, list[str]],
    ) -> set[int]:
        """Overwrite every diverging row with amoCRM's copy (deletions: flag it); returns
        the ids written (a row another writer changed since it was read is not)."""
        if not diverged:
            return set()
        table = TABLES[entity]
        now = datetime.now(UTC)
        written: set[int] = set()
        linked: set[int] = set()
        async with self._db.write() as conn:
            for entity_id in sorted(diverged):
                seen = stored[entity_id]["synced_at"]
                copy = wanted.get(entity_id)
                if copy is None:
                    ok = await flag_deleted(conn, table, entity_id, seen, now)
                else:
                    row = {k: v for k, v in copy.items() if k != LINKS}
                    ok = await overwrite_row(conn, table, {**row, "synced_at": now}, seen)
                    if ok and entity == "leads":
                        links = answer.links[entity_id]
                        await replace_deal_links(conn, [entity_id], links)
                        linked.update(link.contact_id for link in links)
                if ok:
                    written.add(entity_id)
            # As the upsert does: what hangs off an entity follows the copy written.
            records = answer.deals if entity == "leads" else answer.people
            await replace_field_values(conn, entity, records, written)
            # As the worker's apply path does: a contact never stored is queued for a fetch.
            await queue_unknown_contacts(conn, linked, now)
            if entity == "leads":
                await replace_deal_embedded(conn, answer.deals, written)
                companies = linked_companies(answer.deals, written)
                await queue_unknown_companies(conn, companies, now)
                # A repaired stage is a move the copy had missed: history as the upsert
                # writes it. The rows were as read (compare-and-set above), so `stored` is
                # what each one held before.
                before = {
                    i: StoredStage((r["pipeline_id"], r["status_id"]), r["updated_at"])
                    for i, r in stored.items()
                    if i in written
                }
                await record_stage_changes(conn, before, answer.deals, written, now)
        return written


def _wanted_rows(answer: MappedAnswer) -> dict[int, dict[str, Any]]:
    """amoCRM's copy of every returned entity as a table row (deals: with their links)."""
    now = datetime.now(UTC)
    if answer.entity == "leads":
        rows = record_rows(answer.deals, now)
        for row in rows:
            row[LINKS] = {(link.contact_id, link.is_main) for link in answer.links[row["id"]]}
    else:
        rows = record_rows(answer.people, now)
    return {int(row["id"]): row for row in rows}


def _differences(stored: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> list[str]:
    """Names of the columns where the stored row differs from amoCRM's copy.

    `wanted` None: amoCRM confirmed the entity is gone, so only the deletion flag counts.
    """
    if wanted is None:
        return [] if stored["is_deleted"] else ["is_deleted"]
    return [
        name
        for name, value in wanted.items()
        if name not in _NOT_COMPARED and stored.get(name) != value
    ]
