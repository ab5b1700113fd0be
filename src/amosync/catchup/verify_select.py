"""Which stored rows verification looks at, and how much of the copy it has covered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import contacts, deals, verified

# The kinds verification compares: what the read API and its consumers read. Companies
# are kept current by webhooks and catch-up only.
TABLES: dict[str, Table] = {"leads": deals, "contacts": contacts}


def _joined(entity: str) -> Any:
    table = TABLES[entity]
    return table.outerjoin(verified, and_(verified.c.entity == entity, verified.c.id == table.c.id))


def _oldest_order(entity: str) -> tuple[Any, ...]:
    # Never verified first (NULL), then the longest ago; portable "NULLS FIRST".
    return (verified.c.verified_at.is_not(None), verified.c.verified_at, TABLES[entity].c.id)


async def oldest_verified(conn: AsyncConnection, entity: str, limit: int) -> list[int]:
    """Up to `limit` stored ids, never-verified first, then the oldest-verified."""
    table = TABLES[entity]
    rows = await conn.execute(
        select(table.c.id)
        .select_from(_joined(entity))
        .order_by(*_oldest_order(entity))
        .limit(limit)
    )
    return [int(i) for i in rows.scalars()]


@dataclass(frozen=True)
class NextCandidate:
    """The row a background run would verify first for one kind."""

    entity: str
    verified_at: datetime | None  # None: never verified

    def sort_key(self) -> tuple[bool, float]:
        at = self.verified_at
        return (at is not None, at.timestamp() if at is not None else 0.0)


async def next_candidate(conn: AsyncConnection, entity: str) -> NextCandidate | None:
    """None when nothing of this kind is stored."""
    table = TABLES[entity]
    row = (
        await conn.execute(
            select(table.c.id, verified.c.verified_at)
            .select_from(_joined(entity))
            .order_by(*_oldest_order(entity))
            .limit(1)
        )
    ).first()
    return None if row is None else NextCandidate(entity, row[1])


async def random_sample(conn: AsyncConnection, entity: str, n: int) -> list[int]:
    table = TABLES[entity]
    rows = await conn.execute(select(table.c.id).order_by(func.random()).limit(n))
    return sorted(int(i) for i in rows.scalars())


async def ids_after(conn: AsyncConnection, entity: str, after: int, limit: int) -> list[int]:
    """Stored ids above `after`, ascending: `--all` pages through the table with it."""
    table = TABLES[entity]
    rows = await conn.execute(
        select(table.c.id).where(table.c.id > after).order_by(table.c.id).limit(limit)
    )
    return [int(i) for i in rows.scalars()]


async def mark_verified(conn: AsyncConnection, entity: str, ids: list[int], now: datetime) -> None:
    if not ids:
        return
    stmt = upsert_insert(conn, verified)
    stmt = stmt.on_conflict_do_update(
        index_elements=[verified.c.entity, verified.c.id],
        set_={"verified_at": stmt.excluded.verified_at},
    )
    await conn.execute(stmt, [{"entity": entity, "id": i, "verified_at": now} for i in ids])


async def forget_verified(conn: AsyncConnection, entity: str, ids: set[int]) -> None:
    """These rows still differ from amoCRM: make them never-verified, so the background job
    takes them first next time, before rows verified longer ago."""
    if ids:
        await conn.execute(
            delete(verified).where(verified.c.entity == entity, verified.c.id.in_(sorted(ids)))
        )


@dataclass(frozen=True)
class Coverage:
    """How much of one kind's stored rows have been verified, and the oldest verification."""

    entity: str
    stored: int
    verified: int
    oldest_verified_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        at = self.oldest_verified_at
        return {
            "stored": self.stored,
            "verified": self.verified,
            "oldest_verified_at": at.isoformat() if at is not None else None,
        }


async def coverage(db: Database) -> dict[str, Coverage]:
    """Read on every status page refresh, so from the (entity, verified_at) index alone: a
    verified row exists only for a stored row, and stored rows are never removed."""
    found: dict[str, Coverage] = {}
    async with db.read() as conn:
        for entity, table in TABLES.items():
            stored = await conn.scalar(select(func.count()).select_from(table)) or 0
            row = (
                await conn.execute(
                    select(func.count(), func.min(verified.c.verified_at)).where(
                        verified.c.entity == entity
                    )
                )
            ).one()
            # min() keeps the column's type, so the value comes back an aware datetime.
            found[entity] = Coverage(entity, int(stored), int(row[0] or 0), row[1])
    return found
