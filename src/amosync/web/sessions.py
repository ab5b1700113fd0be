"""Server-side state of the status page's sessions, shared by every web process through
the database (`amosync_state`), so that logging out on one process is honoured by all.

A session cookie names a random session id; logging out stores `revoked_session:<id>`,
and a cookie whose id is stored is refused from then on, even a copy taken earlier. Rows
are dropped once the session they revoke would have expired anyway.

The same table holds a random key (`web_signing_key`) for signing CSRF tokens when no admin
token is configured; it is created once, by whichever process needs it first.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import sync_state

REVOKED_PREFIX = "revoked_session:"
SIGNING_KEY = "web_signing_key"


async def revoke_session(db: Database, session_id: str, lifetime: float) -> None:
    """Refuse `session_id` from now on, on every process; forget revocations older than a
    session's `lifetime` (their cookies have expired by then)."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        stmt = upsert_insert(conn, sync_state).values(
            key=REVOKED_PREFIX + session_id, value={"revoked": True}, updated_at=now
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=[sync_state.c.key]))
        await conn.execute(
            delete(sync_state).where(
                sync_state.c.key.startswith(REVOKED_PREFIX, autoescape=True),
                sync_state.c.updated_at < now - timedelta(seconds=lifetime),
            )
        )


async def session_revoked(db: Database, session_id: str) -> bool:
    async with db.read() as conn:
        found = await conn.scalar(
            select(sync_state.c.key).where(sync_state.c.key == REVOKED_PREFIX + session_id)
        )
    return found is not None


async def shared_signing_key(db: Database) -> bytes:
    """A random 32-byte key all processes on this database share, created on first use."""
    async with db.write() as conn:
        stmt = upsert_insert(conn, sync_state).values(
            key=SIGNING_KEY, value={"hex": secrets.token_hex(32)}, updated_at=datetime.now(UTC)
        )
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=[sync_state.c.key]))
        value = await conn.scalar(select(sync_state.c.value).where(sync_state.c.key == SIGNING_KEY))
    if not isinstance(value, dict) or not isinstance(value.get("hex"), str):
        raise RuntimeError("amosync_state.web_signing_key is malformed")
    return bytes.fromhex(value["hex"])
