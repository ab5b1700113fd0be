"""OAuth tokens in `amocrm_oauth_tokens`: one row per account, rotated under a row lock.

Refresh tokens are single-use and rotate. Several worker processes may find the access
token expiring at the same moment; only one of them may spend the refresh token. So a
refresh happens inside one transaction that

1. locks the row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the engine opens every
   transaction with `BEGIN IMMEDIATE`, which takes the database write lock),
2. re-reads it — if another process refreshed meanwhile, its tokens are used as they are,
3. calls the token endpoint and writes the new pair with `version + 1`,
4. commits, and only then hands the new access token out.

If the HTTP answer is lost the transaction rolls back and the old refresh token stays in
the row: amoCRM keeps it valid until the new pair is first used, so the next try works.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from amosync.db.tables import oauth_tokens
from amosync.errors import ReauthRequired

# amoCRM: a refresh token unused for 3 months dies. 90 days is the safe reading of "3 months".
REFRESH_TOKEN_LIFETIME = timedelta(days=90)


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


class TokenStore:
    """The token row of one account (its API base URL)."""

    def __init__(self, engine: AsyncEngine, account: str) -> None:
        self._engine = engine
        self.account = account

    async def load(self) -> StoredTokens | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(self._select())).first()
        return _stored(row) if row is not None else None

    async def save(self, grant: TokenGrant, *, now: datetime | None = None) -> StoredTokens:
        """Store a pair from a code exchange, replacing whatever the account had."""
        now = now or datetime.now(UTC)
        async with self._engine.begin() as conn:
            current = (await conn.execute(self._select().with_for_update())).first()
            return await self._write(conn, grant, now, _stored(current) if current else None)

    async def rotate(
        self,
        still_needed: Callable[[StoredTokens], bool],
        refresh: Refresher,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> StoredTokens:
        """Refresh under the row lock, unless the re-read row shows it is no longer needed.

        `still_needed(row)` sees the row as it is once locked: False means another process
        already refreshed, and that row is returned untouched. `refresh(row)` calls the
        token endpoint; if it raises, nothing is written.
        """
        clock = now or (lambda: datetime.now(UTC))
        async with self._engine.begin() as conn:
            row = (await conn.execute(self._select().with_for_update())).first()
            if row is None:
                raise ReauthRequired(_NO_TOKENS)
            current = _stored(row)
            if not still_needed(current):
                return current
            if not current.refresh_token:
                raise ReauthRequired(_NO_REFRESH_TOKEN)
            grant = await refresh(current)
            return await self._write(conn, grant, clock(), current)

    def _select(self) -> Select[Any]:
        return select(oauth_tokens).where(oauth_tokens.c.account == self.account)

    async def _write(
        self,
        conn: AsyncConnection,
        grant: TokenGrant,
        now: datetime,
        current: StoredTokens | None,
    ) -> StoredTokens:
        values = {
            "access_token": grant.access_token,
            "refresh_token": grant.refresh_token,
            "expires_at": grant.expires_at,
            "refresh_expires_at": now + REFRESH_TOKEN_LIFETIME,
            "updated_at": now,
        }
        version = 1 if current is None else current.version + 1
        if current is None:
            await conn.execute(
                insert(oauth_tokens).values(account=self.account, version=version, **values)
            )
        else:
            await conn.execute(
                update(oauth_tokens)
                .where(oauth_tokens.c.account == self.account)
                .values(version=version, **values)
            )
        return StoredTokens(
            account=self.account,
            access_token=grant.access_token,
            refresh_token=grant.refresh_token,
            expires_at=grant.expires_at,
            refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
            updated_at=now,
            version=version,
        )


REAUTH_HOWTO = (
    "re-authorise: run `amosync auth url`, open the link as an account admin and allow "
    "access, then run `amosync auth exchange CODE` with the code from the redirect "
    "(or do both with `amosync auth login`)"
)
_NO_TOKENS = f"no OAuth tokens stored for this amoCRM account: {REAUTH_HOWTO}"
_NO_REFRESH_TOKEN = f"the stored OAuth tokens have no refresh token: {REAUTH_HOWTO}"


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
