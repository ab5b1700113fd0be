"""OAuth tokens in `amocrm_oauth_tokens`: one row per account, rotated under a refresh lease.

Refresh tokens are single-use and rotate. Several worker processes may find the access
token expiring at the same moment; only one of them may spend the refresh token. A refresh

1. claims the lease `amosync_state[oauth_refresh_lease:<account>]` (db/lease.py: holder id
   and expiry, `LEASE_SECONDS`) in one short transaction, if it is free or expired;
2. re-reads the token row — if another process refreshed meanwhile, its tokens are used
   as they are;
3. calls the token endpoint outside any transaction (at most `REFRESH_DEADLINE` seconds,
   so the lease never lapses under a live call);
4. in one short transaction writes the new pair with `version + 1` only if the row still
   has the version read in 2 (compare-and-set) and releases the lease (`release_in`, so
   the lease is freed only together with the new pair); then hands the new access token out.

A process that finds the lease held polls the token row until its version changes (then
uses the new row), or until the lease is released or expires (then tries to claim it).

No transaction stays open during the HTTP call: on SQLite every transaction takes the
database write lock (`BEGIN IMMEDIATE`, db/engine.py), and holding it for a slow token
endpoint (up to 3 tries of 4 s) made every webhook commit wait longer than amoCRM's 2 s.

If the HTTP answer is lost nothing is written and the old refresh token stays in the row:
amoCRM keeps it valid until the new pair is first used, so the next try works. The
compare-and-set also covers a lease that lapsed anyway (a stalled process): of two pairs
granted for the same refresh token only the first written is kept, and a new consent
saved during a refresh is never overwritten.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Select, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.db.database import Database
from amosync.db.lease import Lease
from amosync.db.tables import oauth_tokens
from amosync.errors import ReauthRequired, RetryLater
from amosync.l10n.catalog import N_

# amoCRM: a refresh token unused for 3 months dies. 90 days is the safe reading of "3 months".
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
# The same lease path runs on PostgreSQL too, rather than `SELECT … FOR UPDATE` around the
# HTTP call: one code path (tested on both databases), no pooled connection left idle in a
# transaction while amoCRM answers, and the handoff costs at most one poll interval. Lease
# expiry uses each process's clock; hosts a few seconds apart only shorten or lengthen a
# lapsed holder's grace, and the compare-and-set keeps even that case correct.
LEASE_SECONDS = 30.0
# A refresh (oauth.py: 3 tries of at most 4 s plus backoff, about 13 s) is cut off here, well
# inside the lease, so a live holder never loses its lease to a second refresher.
REFRESH_DEADLINE = 25.0
# Waiters re-read the token row this often (doubling from the first to the last value).
POLL_FIRST, POLL_MAX = 0.02, 0.1
LEASE_PREFIX = "oauth_refresh_lease:"
_STATE_KEY_LENGTH = 64  # amosync_state.key is String(64)


@dataclass(frozen=True)
class TokenGrant:
    """What the token endpoint handed out. Tokens are kept out of repr (and so out of logs)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class StoredTokens:
    """One row of `amocrm_oauth_tokens`. `updated_at` is the time of the last refresh."""

    account: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    refresh_expires_at: datetime | None
    updated_at: datetime
    version: int

    def expiring(self, now: datetime, margin_seconds: float) -> bool:
        """True when the access token expires within `margin_seconds` (or already has)."""
        return self.expires_at <= now + timedelta(seconds=margin_seconds)


Refresher = Callable[[StoredTokens], Awaitable[TokenGrant]]


def lease_key(account: str) -> str:
    """The `amosync_state` key of the account's refresh lease (hashed if it would not fit)."""
    key = LEASE_PREFIX + account
    if len(key) <= _STATE_KEY_LENGTH:
        return key
    return LEASE_PREFIX + "sha256:" + hashlib.sha256(account.encode()).hexdigest()[:32]


class TokenStore:
    """The token row of one account (its API base URL)."""

    def __init__(self, db: Database, account: str) -> None:
        self._db = db
        self.account = account
        self._lease_key = lease_key(account)

    async def load(self) -> StoredTokens | None:
        async with self._db.read() as conn:
            row = (await conn.execute(self._select())).first()
        return _stored(row) if row is not None else None

    async def save(self, grant: TokenGrant, *, now: datetime | None = None) -> StoredTokens:
        """Store a pair from a code exchange, replacing whatever the account had."""
        now = now or datetime.now(UTC)
        async with self._db.write() as conn:
            current = (await conn.execute(self._select().with_for_update())).first()
            return await self._write(conn, grant, now, _stored(current) if current else None)

    async def rotate(
        self,
        still_needed: Callable[[StoredTokens], bool],
        refresh: Refresher,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> StoredTokens:
        """Refresh under the account's refresh lease, unless the row shows it is not needed.

        `still_needed(row)` sees the row as it is once the lease is held (or once another
        holder changed it): False means another process already refreshed, and that row is
        returned untouched. `refresh(row)` calls the token endpoint, outside any
        transaction; if it raises, nothing is written.
        """
        clock = now or (lambda: datetime.now(UTC))
        while True:
            current = await self._load_required()
            if not still_needed(current):
                return current
            if not current.refresh_token:
                raise ReauthRequired(_NO_REFRESH_TOKEN)
            lease = Lease(self._db, self._lease_key, _holder_id(), LEASE_SECONDS)
            refused = await lease.acquire()
            if refused is None:
                return await self._refresh_holding_lease(lease, still_needed, refresh, clock)
            await self._wait_for_holder(lease, current.version, refused.until)

    async def _refresh_holding_lease(
        self,
        lease: Lease,
        still_needed: Callable[[StoredTokens], bool],
        refresh: Refresher,
        clock: Callable[[], datetime],
    ) -> StoredTokens:
        released = False
        try:
            # Re-read: another holder may have finished between our first read and the claim.
            current = await self._load_required()
            if not still_needed(current):
                return current
            if not current.refresh_token:
                raise ReauthRequired(_NO_REFRESH_TOKEN)
            try:
                async with asyncio.timeout(REFRESH_DEADLINE):
                    grant = await refresh(current)
            except TimeoutError:
                raise RetryLater(
                    f"amoCRM token endpoint: no answer within {REFRESH_DEADLINE:.0f} s"
                ) from None
            async with self._db.write() as conn:
                stored = await self._compare_and_set(conn, grant, clock(), current)
                await lease.release_in(conn)
            released = True
            return stored
        finally:
            if not released:
                await lease.release()

    async def _wait_for_holder(self, lease: Lease, version: int, busy_until: float) -> None:
        """Poll until the token row's version moves on, or the lease is released or expires."""
        delay = POLL_FIRST
        while time.time() < busy_until:
            await asyncio.sleep(min(delay, max(0.0, busy_until - time.time())))
            delay = min(delay * 2, POLL_MAX)
            async with self._db.read() as conn:
                row = (await conn.execute(self._select())).first()
                holder = await lease.current(conn)
            if row is None or int(row._mapping["version"]) != version:
                return
            busy_until = min(busy_until, holder.until if holder is not None else 0.0)

    # -- the token row --------------------------------------------------------------------

    async def _load_required(self) -> StoredTokens:
        current = await self.load()
        if current is None:
            raise ReauthRequired(_NO_TOKENS)
        return current

    def _select(self) -> Select[Any]:
        return select(oauth_tokens).where(oauth_tokens.c.account == self.account)

    async def _compare_and_set(
        self, conn: AsyncConnection, grant: TokenGrant, now: datetime, read: StoredTokens
    ) -> StoredTokens:
        """Write the new pair if the row is still at `read.version`; else return the row.

        A different version means someone else wrote meanwhile (a new consent, or a holder
        whose lease lapsed): their pair is the one in use, ours is dropped unused.
        """
        result: CursorResult[Any] = await conn.execute(
            update(oauth_tokens)
            .where(oauth_tokens.c.account == self.account)
            .where(oauth_tokens.c.version == read.version)
            .values(version=read.version + 1, **_values(grant, now))
        )
        if result.rowcount == 1:
            return _new_row(self.account, grant, now, read.version + 1)
        row = (await conn.execute(self._select())).first()
        if row is None:
            raise ReauthRequired(_NO_TOKENS)
        return _stored(row)

    async def _write(
        self,
        conn: AsyncConnection,
        grant: TokenGrant,
        now: datetime,
        current: StoredTokens | None,
    ) -> StoredTokens:
        version = 1 if current is None else current.version + 1
        if current is None:
            await conn.execute(
                insert(oauth_tokens).values(
                    account=self.account, version=version, **_values(grant, now)
                )
            )
        else:
            await conn.execute(
                update(oauth_tokens)
                .where(oauth_tokens.c.account == self.account)
                .values(version=version, **_values(grant, now))
            )
        return _new_row(self.account, grant, now, version)


REAUTH_HOWTO = N_(
    "re-authorise: run `amosync auth url`, open the link as an account admin and allow "
    "access, then run `amosync auth exchange CODE` with the code from the redirect "
    "(or do both with `amosync auth login`)"
)
_NO_TOKENS = f"no OAuth tokens stored for this amoCRM account: {REAUTH_HOWTO}"
_NO_REFRESH_TOKEN = f"the stored OAuth tokens have no refresh token: {REAUTH_HOWTO}"


def _holder_id() -> str:
    """Who holds a lease, readable in `amosync_state`: host, pid and a per-claim nonce."""
    return f"{socket.gethostname()[:40]}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _values(grant: TokenGrant, now: datetime) -> dict[str, Any]:
    return {
        "access_token": grant.access_token,
        "refresh_token": grant.refresh_token,
        "expires_at": grant.expires_at,
        "refresh_expires_at": now + REFRESH_TOKEN_LIFETIME,
        "updated_at": now,
    }


def _new_row(account: str, grant: TokenGrant, now: datetime, version: int) -> StoredTokens:
    return StoredTokens(
        account=account,
        access_token=grant.access_token,
        refresh_token=grant.refresh_token,
        expires_at=grant.expires_at,
        refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
        updated_at=now,
        version=version,
    )


def _stored(row: Row[tuple[object, ...]]) -> StoredTokens:
    m = row._mapping
    return StoredTokens(
        account=str(m["account"]),
        access_token=str(m["access_token"]),
        refresh_token=m["refresh_token"],
        expires_at=m["expires_at"],
        refresh_expires_at=m["refresh_expires_at"],
        updated_at=m["updated_at"],
        version=int(m["version"]),
    )
