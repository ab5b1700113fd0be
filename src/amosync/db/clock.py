"""The database's clock: what "now" means when judging a timestamp from amoCRM.

Several hosts may write one PostgreSQL database, each with its own clock; the database's
is the one they share. Asking for it on every batch would cost a round trip, so its offset
from this host's clock is measured once a minute per engine and added to the local time.
SQLite runs on this host: its clock is ours.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

MEASURE_EVERY = 60.0  # seconds an offset is trusted before it is measured again

# engine → (monotonic time of the measurement, database clock minus ours)
_offsets: WeakKeyDictionary[Engine, tuple[float, timedelta]] = WeakKeyDictionary()


async def database_now(db: AsyncEngine | AsyncConnection) -> datetime:
    """The database clock's current time (aware UTC)."""
    local = datetime.now(UTC)
    if db.dialect.name != "postgresql":
        return local
    engine = db.sync_engine
    known = _offsets.get(engine)
    if known is None or time.monotonic() - known[0] > MEASURE_EVERY:
        known = (time.monotonic(), await _measure(db))
        _offsets[engine] = known
    return local + known[1]


async def _measure(db: AsyncEngine | AsyncConnection) -> timedelta:
    before = datetime.now(UTC)
    if isinstance(db, AsyncConnection):
        theirs = await db.scalar(text("SELECT clock_timestamp()"))
    else:
        async with db.connect() as conn:
            before = datetime.now(UTC)
            theirs = await conn.scalar(text("SELECT clock_timestamp()"))
    after = datetime.now(UTC)
    if not isinstance(theirs, datetime):
        return timedelta(0)
    return theirs.astimezone(UTC) - (before + (after - before) / 2)
