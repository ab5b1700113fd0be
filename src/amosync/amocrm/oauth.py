"""OAuth 2.0 tokens for an external amoCRM integration (instead of a long-lived token).

`OAuthTokens` is the `TokenProvider` the API client asks before every request. It refreshes
the access token `refresh_margin` seconds before it expires, and once after a 401. In one
process an asyncio lock makes concurrent requests share one refresh; across processes the
refresh lease in `TokenStore.rotate` does (see token_store.py for the rotation rules). The
token endpoint (token_endpoint.py) is called outside any database transaction, so a slow
amoCRM never holds SQLite's write lock. Building these from Settings is the composition
root's job (amosync/oauth_setup.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from amosync.amocrm.token_endpoint import GrantRefused, TokenEndpoint
from amosync.amocrm.token_store import StoredTokens, TokenGrant, TokenStore
from amosync.errors import ReauthRequired

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class OAuthTokens:
    """`TokenProvider` backed by the token row: refreshes ahead of expiry and after a 401."""

    def __init__(
        self,
        store: TokenStore,
        endpoint: TokenEndpoint | None,
        *,
        refresh_margin: float = 900.0,
        keepalive_days: float = 30.0,
        missing_settings: str = "",
        clock: Clock = utc_now,
        no_tokens_hint: str | None = None,
    ) -> None:
        self._no_tokens_hint = no_tokens_hint
        self._store = store
        self._endpoint = endpoint
        self._margin = refresh_margin
        self._keepalive = timedelta(days=keepalive_days)
        self._missing = missing_settings
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: StoredTokens | None = None
        # A refused refresh token stays refused: do not ask amoCRM again until the row
        # changes (a new consent through `amosync auth exchange` bumps its version).
        self._refused: tuple[int, GrantRefused] | None = None

    async def token(self) -> str:
        current = self._current
        if current is not None and not current.expiring(self._clock(), self._margin):
            return current.access_token
        async with self._lock:
            current = self._current
            if current is not None and not current.expiring(self._clock(), self._margin):
                return current.access_token  # a request ahead of us refreshed
            # Another process may have refreshed already: the row, not our copy, decides.
            current = await self._load()
            if current.expiring(self._clock(), self._margin):
                current = await self._rotate(
                    lambda row: row.expiring(self._clock(), self._margin), "expiring"
                )
            self._current = current
            return current.access_token

    async def token_rejected(self, token: str) -> str | None:
        """After a 401 with `token`: a newer token if there is one, else refresh once."""
        async with self._lock:
            if self._current is not None and self._current.access_token != token:
                return self._current.access_token
            current = await self._load()
            if current.access_token == token:
                current = await self._rotate(lambda row: row.access_token == token, "rejected")
            self._current = current
            return current.access_token

    async def keep_alive(self) -> bool:
        """Refresh when the last refresh is older than `keepalive_days`; True if it did.

        A refresh token unused for 3 months dies, so an account without API traffic would
        otherwise need a new consent. Does nothing while no tokens are stored.
        """
        async with self._lock:
            row = await self._store.load()
            if row is None:
                return False

            def stale(r: StoredTokens) -> bool:
                return r.updated_at <= self._clock() - self._keepalive

            if not stale(row):
                return False
            before = row.version
            self._current = await self._rotate(stale, "keep-alive")
            return self._current.version != before

    async def _load(self) -> StoredTokens:
        row = await self._store.load()
        if row is None:
            raise ReauthRequired(
                self._no_tokens_hint
                or "no amoCRM token: set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN, or authorise OAuth "
                "with `amosync auth url` and `amosync auth exchange CODE` "
                "(or `amosync auth login`)"
            )
        return row

    async def _rotate(self, still_needed: Callable[[StoredTokens], bool], why: str) -> StoredTokens:
        endpoint = self._endpoint
        if endpoint is None:
            raise ReauthRequired(
                f"the OAuth access token needs a refresh but {self._missing or 'a setting'} "
                "is not set"
            )

        async def refresh(row: StoredTokens) -> TokenGrant:
            if self._refused is not None and self._refused[0] == row.version:
                known = self._refused[1]
                raise GrantRefused(str(known), status=known.status, hint=known.hint)
            assert row.refresh_token is not None  # rotate() checked
            try:
                return await endpoint.refresh(row.refresh_token)
            except GrantRefused as refused:
                self._refused = (row.version, refused)
                log.error(
                    "oauth_refresh_refused",
                    extra={"event": "oauth_refresh_refused", "hint": refused.hint},
                )
                raise

        row = await self._store.rotate(still_needed, refresh, now=self._clock)
        log.info(
            "oauth_tokens",
            extra={
                "event": "oauth_tokens",
                "reason": why,
                "version": row.version,
                "expires_at": row.expires_at.isoformat(timespec="seconds"),
            },
        )
        return row
