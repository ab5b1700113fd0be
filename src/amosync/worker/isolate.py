"""A bad entity is isolated, never its batch.

A chunk is fetched in one call and stored in one transaction. When either fails because of
what one entity holds (an answer made too large by it, a value the database refuses), the
chunk is halved, each half fetched or stored on its own, until the entity at fault is alone:
everything else is stored and only that entity's events end `failed`, with the reason.
Before, one such lead (a 300-character RentProg ID in a varchar(255)) released its whole
batch without spending an attempt, and the batch came back every ~2 s for ever.

A healthy chunk costs what it did: one call, one transaction. A chunk with one bad entity
among 250 costs ~2·log2(250) ≈ 16 more transactions (or calls, for an oversized answer).

Which storage errors are the entity's fault is decided by what the database says:

- refused (the data): SQLSTATE classes 22 data exception (a value too long, out of range,
  untranslatable), 23 integrity constraint, 54 program limit exceeded (an index entry over
  2.7 kB); SQLite CONSTRAINT, TOOBIG, MISMATCH, RANGE; a value the driver cannot encode at
  all. Reproduced on the entity alone, its events fail at once: the same data is refused
  the same way on every retry, and amoCRM sends a new event when someone edits it.
- unavailable (the database): a lost connection, classes 08 connection, 40 rollback
  (deadlock, serialization), 53 resources (disk full, out of memory), 57 operator
  intervention (shutdown, timeout), 58 system I/O; SQLite BUSY, LOCKED, FULL, IOERR,
  READONLY, CANTOPEN…; a driver error without a code (psycopg's "connection failed"). The
  error goes up as before: what is stored stays stored, the rest goes back without spending
  an attempt. A database down as a whole must not fail events that will store fine later.
- anything else (a schema out of date, an internal error): split like a refusal, but an
  entity alone with it spends an attempt and is retried with backoff, so it fails only after
  `max_attempts` (no more free retries for ever, no instant failure for a transient fault).

The class of the exception alone is not enough: psycopg raises OperationalError both for a
lost connection and for an index entry that is too large, which is why the SQLSTATE decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.amocrm.client import AmoClient
from amosync.core.answer import MappedAnswer
from amosync.core.plan import ClaimedEvent, FetchChunk
from amosync.errors import AnswerTooLarge
from amosync.inbox.store import InboxStore
from amosync.settings import DEFAULT_MAX_CLOCK_SKEW
from amosync.worker.apply import Applied, apply_fetched

log = logging.getLogger(__name__)

REFUSED, UNAVAILABLE, UNKNOWN = "refused", "unavailable", "unknown"

# The longest database reason kept in `last_error` (the first line of the driver's message).
REASON_CHARS = 300

_PG_REFUSED = frozenset({"22", "23", "54"})
_PG_UNAVAILABLE = frozenset({"08", "40", "53", "57", "58"})
# SQLite primary result codes (https://sqlite.org/rescode.html).
_SQLITE_REFUSED = frozenset({18, 19, 20, 25})  # TOOBIG CONSTRAINT MISMATCH RANGE
# BUSY LOCKED NOMEM READONLY INTERRUPT IOERR CORRUPT FULL CANTOPEN PROTOCOL NOTADB
_SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 26})

# What a failed store can raise: the database's errors, wrapped by SQLAlchemy, and the
# driver's own when it cannot encode a value (SQLite: a lone surrogate, an int over 64 bits).
STORAGE_ERRORS = (SQLAlchemyError, ValueError, OverflowError)


def storage_failure(exc: BaseException) -> str:
    """REFUSED, UNAVAILABLE or UNKNOWN: whose fault a failed store is (see the module doc)."""
    if isinstance(exc, ValueError | OverflowError):
        return REFUSED
    if isinstance(exc, PoolTimeout | DisconnectionError):
        return UNAVAILABLE
    if not isinstance(exc, DBAPIError):
        # Raised before the statement reached the database: a bind value that cannot be
        # converted (a Json value that does not serialise).
        orig = exc.orig if isinstance(exc, StatementError) else None
        return REFUSED if isinstance(orig, ValueError | OverflowError | TypeError) else UNKNOWN
    if exc.connection_invalidated:
        return UNAVAILABLE
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate[:2] in _PG_REFUSED:
            return REFUSED
        return UNAVAILABLE if sqlstate[:2] in _PG_UNAVAILABLE else UNKNOWN
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in _SQLITE_REFUSED:
            return REFUSED
        return UNAVAILABLE if primary in _SQLITE_UNAVAILABLE else UNKNOWN
    if isinstance(exc, InterfaceError | OperationalError):
        return UNAVAILABLE
    return REFUSED if isinstance(exc, DataError | IntegrityError) else UNKNOWN


def database_reason(exc: BaseException) -> str:
    """The database's own words, first line only (no SQL, no parameters), shortened."""
    source = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    text = lines[0] if lines else type(source).__name__
    return f"{type(source).__name__}: {text}"[:REASON_CHARS]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a chunk's call(s) returned, and the ids left out because of the answer size."""

    objects: list[dict[str, Any]]
    chunk: FetchChunk  # the chunk without the ids below and their events
    too_large: dict[int, str]  # entity id → reason


async def fetch_apart(
    client: AmoClient, chunk: FetchChunk, events: Mapping[int, ClaimedEvent]
) -> Fetched:
    """`client.fetch_by_ids` for the chunk, the entities too large alone left out."""
    objects, too_large = await fetch_ids_apart(client, chunk.entity, chunk.ids)
    if not too_large:
        return Fetched(objects, chunk, too_large)
    kept = tuple(i for i in chunk.ids if i not in too_large)
    return Fetched(objects, _subchunk(chunk, kept, events), too_large)


async def fetch_ids_apart(
    client: AmoClient, entity: str, ids: Sequence[int]
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """`client.fetch_by_ids`; an answer over the size cap is asked for again in halves, down
    to the one entity that alone makes it too large. Returns the objects and the ids left
    out with the reason (verify asks by ids the same way: catchup/verify.py)."""
    too_large: dict[int, str] = {}

    async def fetch(part: Sequence[int]) -> list[dict[str, Any]]:
        try:
            return await client.fetch_by_ids(entity, part)
        except AnswerTooLarge as exc:
            if len(part) == 1:
                too_large[part[0]] = str(exc)
                return []
            half = len(part) // 2
            return [*await fetch(part[:half]), *await fetch(part[half:])]

    return await fetch(ids), too_large


@dataclass(slots=True)
class Stored:
    """How storing a chunk went: what was written, and the entities refused."""

    applied: Applied = field(default_factory=lambda: Applied(0, 0, 0, 0))
    done: list[int] = field(default_factory=list)  # events settled `done`
    refused: dict[int, str] = field(default_factory=dict)  # entity id → reason: fail now
    retry: dict[int, str] = field(default_factory=dict)  # entity id → reason: spend attempt


async def store_apart(
    inbox: InboxStore,
    answer: MappedAnswer,
    chunk: FetchChunk,
    events: Mapping[int, ClaimedEvent],
    max_skew: float = DEFAULT_MAX_CLOCK_SKEW,
) -> Stored:
    """Store the answer with the chunk's events marked done, each try in a transaction of
    its own; split it when that fails.

    Raises the storage error when the database is unavailable (what was stored before
    stays stored, its events done)."""
    stored = Stored()
    if not chunk.ids:  # every entity's answer was too large
        return stored

    async def store(ids: tuple[int, ...]) -> None:
        event_ids = chunk.event_ids if ids == chunk.ids else events_of(chunk, ids, events)
        part = answer if ids == chunk.ids else _part(answer, frozenset(ids))
        applied = await _apply(inbox, part, event_ids, max_skew)
        stored.applied = _sum(stored.applied, applied)
        stored.done.extend(event_ids)

    await _split(chunk.entity, chunk.ids, store, stored.refused, stored.retry)
    return stored


async def store_page_apart(
    conn: AsyncConnection, answer: MappedAnswer, max_skew: float = DEFAULT_MAX_CLOCK_SKEW
) -> tuple[Applied, dict[int, str]]:
    """Store a catch-up page in the caller's transaction, each try in a savepoint of its
    own; an entity the database refuses is left out. Returns what was written and the
    entities left out with the reason.

    Raises the storage error when the database is unavailable."""
    total = Applied(0, 0, 0, 0)
    left_out: dict[int, str] = {}

    every = tuple(deal.id for deal in answer.deals) + tuple(p.id for p in answer.people)

    async def store(ids: tuple[int, ...]) -> None:
        nonlocal total
        part = answer if ids == every else _part(answer, frozenset(ids))
        async with conn.begin_nested():
            applied = await apply_fetched(conn, part, (), max_skew=max_skew)
        total = _sum(total, applied)

    # Refused or not, an entity left out is fetched again by the worker: both verdicts go
    # the same way here.
    await _split(answer.entity, every, store, left_out, left_out)
    return total, left_out


async def _split(
    entity: str,
    ids: tuple[int, ...],
    store: Callable[[tuple[int, ...]], Awaitable[None]],
    refused: dict[int, str],
    retry: dict[int, str],
) -> None:
    """`store(ids)`; when it fails, `store` each half, down to single entities, whose
    reasons go into `refused` or `retry` by the verdict of `storage_failure`."""
    try:
        await store(ids)
        return
    except STORAGE_ERRORS as exc:
        verdict = storage_failure(exc)
        if verdict == UNAVAILABLE or not ids:
            raise
        if len(ids) == 1:
            # No id in the reason: the event rows name it, and equal reasons are settled in
            # one statement (a schema out of date fails every entity the same way).
            reason = f"the database refused this entity: {database_reason(exc)}"
            (refused if verdict == REFUSED else retry)[ids[0]] = reason
            log.warning(
                "entity_not_stored",
                extra={
                    "event": "entity_not_stored",
                    "entity": entity,
                    "entity_id": ids[0],
                    "verdict": verdict,
                    "error": reason,
                },
            )
            return
    half = len(ids) // 2
    await _split(entity, ids[:half], store, refused, retry)
    await _split(entity, ids[half:], store, refused, retry)


async def _apply(
    inbox: InboxStore, answer: MappedAnswer, event_ids: Sequence[int], max_skew: float
) -> Applied:
    # The upsert commits with (some of) its events marked done. Where writes take turns, the
    # rest are marked in short transactions after it (a crash between leaves them leased:
    # they come due again and are fetched once more, no loss).
    per_turn = inbox.db.turns.rows_per_turn or len(event_ids)
    with_upsert, after = event_ids[:per_turn], event_ids[per_turn:]
    async with inbox.db.write() as conn:
        applied = await apply_fetched(conn, answer, with_upsert, max_skew=max_skew)
    await inbox.mark_done(after)
    return applied


def events_of(
    chunk: FetchChunk, ids: Sequence[int], events: Mapping[int, ClaimedEvent]
) -> tuple[int, ...]:
    """The chunk's events about these entity ids."""
    wanted = frozenset(ids)
    return tuple(e for e in chunk.event_ids if events[e].entity_id in wanted)


def by_reason(
    chunk: FetchChunk, reasons: Mapping[int, str], events: Mapping[int, ClaimedEvent]
) -> dict[str, list[int]]:
    """The chunk's events about the entities in `reasons`, grouped by their entity's reason
    (one statement per reason when they are settled)."""
    grouped: dict[str, list[int]] = {}
    for event_id in chunk.event_ids:
        event = events.get(event_id)  # None: settled already (held back, worker/review.py)
        entity_id = event.entity_id if event is not None else None
        if entity_id is not None and entity_id in reasons:
            grouped.setdefault(reasons[entity_id], []).append(event_id)
    return grouped


def _subchunk(
    chunk: FetchChunk, ids: Sequence[int], events: Mapping[int, ClaimedEvent]
) -> FetchChunk:
    return FetchChunk(chunk.entity, tuple(ids), events_of(chunk, ids, events))


def _part(answer: MappedAnswer, ids: frozenset[int]) -> MappedAnswer:
    """The answer restricted to these entity ids (when it was requested and the deletions
    proven among them kept)."""
    deals = [deal for deal in answer.deals if deal.id in ids]
    people = [person for person in answer.people if person.id in ids]
    links = {deal_id: answer.links[deal_id] for deal_id in ids if deal_id in answer.links}
    returned = len(deals) + len(people)
    return MappedAnswer(
        answer.entity,
        returned,
        answer.gone & ids,
        deals,
        links,
        people,
        answer.fetched_at,
        answer.deleted & ids,
    )


def _sum(a: Applied, b: Applied) -> Applied:
    return Applied(
        a.written + b.written,
        a.stale + b.stale,
        a.deleted + b.deleted,
        a.contacts_queued + b.contacts_queued,
        a.future + b.future,
        a.superseded + b.superseded,
    )
