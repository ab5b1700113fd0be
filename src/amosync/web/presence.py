"""A web-only process (`serve --no-worker`) leaves a trace, so `copy-db` can see it running.

One row in `amosync_state` (`web_process.<host>:<pid>`), refreshed every 20 s and removed on
a clean shutdown. A `serve` with its worker inside needs none: the worker's heartbeat says
the same. Failures to write are logged and retried at the next beat; they never stop serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError

from amosync.catchup.state import write_state
from amosync.db.database import Database
from amosync.db.liveness import WEB_KEY_PREFIX
from amosync.db.tables import sync_state

log = logging.getLogger(__name__)

BEAT_SECONDS = 20.0


def presence_key() -> str:
    return f"{WEB_KEY_PREFIX}{socket.gethostname()[:30]}:{os.getpid()}"


async def beat_until_cancelled(db: Database, interval: float = BEAT_SECONDS) -> None:
    key = presence_key()
    try:
        while True:
            try:
                async with db.write() as conn:
                    await write_state(conn, key, {"pid": os.getpid()})
            except SQLAlchemyError as exc:
                log.warning(
                    "web_presence_not_written",
                    extra={"event": "web_presence_not_written", "error": str(exc)[:200]},
                )
            await asyncio.sleep(interval)
    finally:
        with contextlib.suppress(SQLAlchemyError):
            async with db.write() as conn:
                await conn.execute(delete(sync_state).where(sync_state.c.key == key))
