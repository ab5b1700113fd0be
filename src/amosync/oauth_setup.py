"""OAuth objects built from Settings: part of the composition root (services.py).

The amocrm package takes plain values (a base URL, a client id, a store); reading which
settings are there, and choosing OAuth or the long-lived token, happens here.
"""

from __future__ import annotations

import httpx

from amosync.amocrm.auth import LongLivedToken, TokenProvider
from amosync.amocrm.calls import CallRecorder
from amosync.amocrm.oauth import Clock, OAuthTokens, utc_now
from amosync.amocrm.token_endpoint import GRANT_TIMEOUT, TokenEndpoint
from amosync.amocrm.token_info import configured_kind, missing_token_hint
from amosync.amocrm.token_store import TokenStore
from amosync.db.api_log import DbCallRecorder
from amosync.db.database import Database
from amosync.settings import Settings
from amosync.worker.jobs import PeriodicJob
from amosync.worker.token_keepalive import (
    CHECK_INTERVAL,
    FIRST_CHECK_DELAY,
    keepalive_job,
)


def missing_oauth_settings(settings: Settings) -> list[str]:
    """The variables an OAuth grant still needs, in the order the settings table lists them."""
    missing = []
    if settings.api_base_url is None:
        missing.append("AMOSYNC_AMOCRM_SUBDOMAIN (or AMOSYNC_AMOCRM_BASE_URL)")
    if not settings.amocrm_client_id:
        missing.append("AMOSYNC_AMOCRM_CLIENT_ID")
    if settings.amocrm_client_secret is None:
        missing.append("AMOSYNC_AMOCRM_CLIENT_SECRET")
    if not settings.amocrm_redirect_uri:
        missing.append("AMOSYNC_AMOCRM_REDIRECT_URI")
    return missing


def token_endpoint(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    recorder: CallRecorder | None = None,
) -> TokenEndpoint | None:
    """The endpoint for these settings, or None while an OAuth variable is missing."""
    base, client_id = settings.api_base_url, settings.amocrm_client_id
    secret, redirect_uri = settings.amocrm_client_secret, settings.amocrm_redirect_uri
    if not (base and client_id and secret is not None and redirect_uri):
        return None
    return TokenEndpoint(
        base,
        client_id,
        secret.get_secret_value(),
        redirect_uri,
        timeout=min(settings.api_timeout, GRANT_TIMEOUT),
        transport=transport,
        recorder=recorder,
        backoff_base=0.25,
    )


def oauth_tokens(
    settings: Settings,
    store: TokenStore,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    recorder: CallRecorder | None = None,
    clock: Clock = utc_now,
) -> OAuthTokens:
    """The provider for these settings (refresh impossible while OAuth settings are missing)."""
    return OAuthTokens(
        store,
        token_endpoint(settings, transport=transport, recorder=recorder),
        refresh_margin=settings.token_refresh_margin,
        keepalive_days=settings.token_keepalive_days,
        missing_settings=", ".join(missing_oauth_settings(settings)),
        clock=clock,
        no_tokens_hint=missing_token_hint(settings),
    )


def token_provider(
    settings: Settings,
    db: Database,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> TokenProvider:
    """OAuth when a client id is set, a long-lived token when one is set, else whatever
    OAuth tokens `amosync auth` stored (none: every call says how to get a token)."""
    long_lived = settings.amocrm_long_lived_token
    if configured_kind(settings) == "long_lived" or settings.api_base_url is None:
        return LongLivedToken(long_lived.get_secret_value() if long_lived else None)
    store = TokenStore(db, settings.api_base_url)
    return oauth_tokens(settings, store, transport=transport, recorder=DbCallRecorder(db, "oauth"))


def token_keepalive_job(
    settings: Settings,
    db: Database,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    interval: float = CHECK_INTERVAL,
    first_delay: float = FIRST_CHECK_DELAY,
) -> PeriodicJob | None:
    """The job, or None when amosync uses a long-lived token (nothing to keep alive)."""
    if configured_kind(settings) == "long_lived" or settings.api_base_url is None:
        return None
    tokens = oauth_tokens(
        settings,
        TokenStore(db, settings.api_base_url),
        transport=transport,
        recorder=DbCallRecorder(db, "oauth"),
    )
    return keepalive_job(tokens, interval=interval, first_delay=first_delay)
