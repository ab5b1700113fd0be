"""The token keep-alive job: an idle account must never lose its OAuth refresh token.

amoCRM kills a refresh token unused for 3 months. Webhook-driven API calls refresh the
access token daily, but an account with no traffic makes none; so every hour the worker
checks when the tokens were last refreshed and refreshes once that is older than
`AMOSYNC_TOKEN_KEEPALIVE_DAYS`. Several workers may run the job: the row lock and re-read
in `TokenStore.rotate` make the second one find the fresh row and do nothing.
"""

from __future__ import annotations

import logging

from amosync.amocrm.oauth import OAuthTokens
from amosync.worker.jobs import PeriodicJob

log = logging.getLogger(__name__)

CHECK_INTERVAL = 3600.0  # one indexed read per hour; refreshes happen every keepalive_days
FIRST_CHECK_DELAY = 60.0  # let start-up (migrations, first batch) settle first


def keepalive_job(
    tokens: OAuthTokens, *, interval: float = CHECK_INTERVAL, first_delay: float = FIRST_CHECK_DELAY
) -> PeriodicJob:
    """The job for these tokens (oauth_setup.token_keepalive_job builds it from Settings)."""

    async def run() -> bool:
        refreshed = await tokens.keep_alive()
        if refreshed:
            log.info("token_keepalive", extra={"event": "token_keepalive", "refreshed": True})
        return refreshed

    return PeriodicJob("token-keepalive", interval, run, first_delay=first_delay)
