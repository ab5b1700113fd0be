"""The database's clock: what "now" means when judging a timestamp from amoCRM.

Several hosts may write one PostgreSQL database, each with its own clock; the database's
is the one they share. Asking for it on every batch would cost a round trip, so its offset
from this host's clock is measured once a minute and added to the local time (`Database.now`
keeps its own; `database_now(conn)` one per engine, for code that holds only a connection).
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


async def database_now(conn: AsyncConnection) -> datetime:
    """The database clock's current time (aware UTC), inside `conn`'s transaction."""
    local = datetime.now(UTC)
    if conn.dialect.name != "postgresql":
        return local
    engine = conn.sync_engine
    known = _offsets.get(engine)
    if known is None or time.monotonic() - known[0] > MEASURE_EVERY:
        known = (time.monotonic(), await measure_offset(conn))
        _offsets[engine] = known
    return local + known[1]


async def measure_offset(conn: AsyncConnection) -> timedelta:
    """The PostgreSQL clock minus ours, asked once through `conn`."""
    before = datetime.now(UTC)
    theirs = await conn.scalar(text("SELECT clock_timestamp()"))
    after = datetime.now(UTC)
    if not isinstance(theirs, datetime):
        return timedelta(0)
    return theirs.astimezone(UTC) - (before + (after - before) / 2)
