"""The database's clock: what "now" means when judging a timestamp from amoCRM.

Several hosts may write one PostgreSQL database, each with its own clock; the database's
is the one they share. Asking for it on every batch would cost a round trip, so its offset
from this host's clock is measured once a minute per engine and added to the local time
(`database_now(conn)` inside a transaction; `Database.now()` connects only to measure).
SQLite runs on this host: its clock is ours.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncConnection

MEASURE_EVERY = 60.0  # seconds an offset is trusted before it is measured again

# engine → (monotonic time of the measurement, database clock minus ours)
_offsets: WeakKeyDictionary[Engine, tuple[float, timedelta]] = WeakKeyDictionary()


def known_now(engine: Engine) -> datetime | None:
    """The database clock's current time from `engine`'s offset, None when that offset is
    missing or older than MEASURE_EVERY (then `database_now` measures it)."""
    local = datetime.now(UTC)
    if engine.dialect.name != "postgresql":
        return local
    known = _offsets.get(engine)
    if known is None or time.monotonic() - known[0] > MEASURE_EVERY:
        return None
    return local + known[1]


async def database_now(conn: AsyncConnection) -> datetime:
    """The database clock's current time (aware UTC), inside `conn`'s transaction."""
    now = known_now(conn.sync_engine)
    if now is not None:
        return now
    offset = await _measure_offset(conn)
    _offsets[conn.sync_engine] = (time.monotonic(), offset)
    return datetime.now(UTC) + offset


async def _measure_offset(conn: AsyncConnection) -> timedelta:
    """The PostgreSQL clock minus ours, asked once through `conn`."""
    before = datetime.now(UTC)
    theirs = await conn.scalar(text("SELECT clock_timestamp()"))
    after = datetime.now(UTC)
    if not isinstance(theirs, datetime):
        return timedelta(0)
    return theirs.astimezone(UTC) - (before + (after - before) / 2)
