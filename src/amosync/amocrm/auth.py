"""Where the bearer token comes from: a long-lived token here, OAuth tokens in oauth.py.

The client asks `token()` before each request and calls `token_rejected()` once after a 401:
a provider that can refresh returns a new token (the client retries once), a provider that
cannot returns None and the client raises ReauthRequired.
"""

from __future__ import annotations

from typing import Protocol

from amosync.errors import ReauthRequired


class TokenProvider(Protocol):
    async def token(self) -> str: ...

    async def token_rejected(self, token: str) -> str | None: ...


class LongLivedToken:
    """A long-lived token from a private integration: used as is, never refreshed."""

    def __init__(self, token: str | None) -> None:
        self._token = token

    async def token(self) -> str:
        if not self._token:
            raise ReauthRequired("no amoCRM token configured: set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN")
        return self._token

    async def token_rejected(self, token: str) -> str | None:
        return None  # amoCRM's own library never refreshes long-lived tokens
