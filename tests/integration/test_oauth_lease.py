"""The OAuth refresh lease, on SQLite and PostgreSQL: no database lock is held while amoCRM's
token endpoint answers, a dead holder's lease is taken over, and a pair written meanwhile
(a new consent) is never overwritten by a late refresh answer."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from amosync.amocrm.token_store import LEASE_PREFIX, lease_key
from amosync.db.database import Database
from amosync.db.dialect import upsert_insert
from amosync.db.tables import sync_state
from amosync.inbox import InboxStore
from amosync.testing import FakeAmoState
from tests.integration.test_inbox import row as pending_row
from tests.integration.test_oauth import MakeSettings, consent, oauth_settings, provider, stored


async def wait_for_refresh_request(fake: FakeAmoState) -> None:
    for _ in range(500):
        if fake.oauth.refresh_requests > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the refresh request never reached the fake token endpoint")


async def lease_value(database: Database, account: str) -> dict[str, Any] | None:
    async with database.read() as conn:
        query = select(sync_state.c.value).where(sync_state.c.key == lease_key(account))
        value = (await conn.execute(query)).scalar_one_or_none()
    return value if isinstance(value, dict) else None


async def plant_lease(database: Database, account: str, holder: str, until: float) -> None:
    """A lease left by another process (one that died, or is still refreshing)."""
    async with database.write() as conn:
        await conn.execute(
            upsert_insert(conn, sync_state).values(
                key=lease_key(account),
                value={"holder": holder, "until": until},
                updated_at=datetime.now(UTC),
            )
        )


async def test_webhook_commits_while_a_slow_refresh_runs(
    make_settings: MakeSettings,
    db_url: str,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """The token endpoint takes 3 s: a webhook insert from another process commits within
    1 s meanwhile (the refresh holds no database lock), and the refresh still succeeds."""
    settings = oauth_settings(make_settings, api_timeout=10.0)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    fake.oauth.answer_delay = 3.0
    web_database = Database.open(db_url)
    try:
        refreshing = asyncio.create_task(provider(settings, database, fake_transport).token())
        await wait_for_refresh_request(fake)
        started = time.monotonic()
        await InboxStore(web_database).append([pending_row(1)])
        insert_seconds = time.monotonic() - started
        still_refreshing = not refreshing.done()
        token = await refreshing
    finally:
        await web_database.dispose()

    row = await stored(settings, database)
    assert (True, True) == (insert_seconds < 1.0, still_refreshing), insert_seconds
    assert (1, 2, row.access_token) == (fake.oauth.refreshes, row.version, token)


async def test_expired_lease_of_a_dead_process_is_taken_over(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """A lease whose holder died and whose time ran out does not block: one refresh, and the
    lease is free again afterwards."""
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    assert settings.api_base_url is not None
    await plant_lease(database, settings.api_base_url, "dead-host/1/00000000", time.time() - 1)

    token = await provider(settings, database, fake_transport).token()

    lease = await lease_value(database, settings.api_base_url)
    assert (1, token) == (fake.oauth.refreshes, (await stored(settings, database)).access_token)
    assert lease is not None
    assert (None, 0.0) == (lease["holder"], lease["until"])


async def test_live_lease_is_waited_out_then_taken(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """A lease held for 1 more second by a process that never writes: nobody refreshes
    before it ends, then exactly one refresh."""
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    assert settings.api_base_url is not None
    await plant_lease(database, settings.api_base_url, "stuck-host/1/00000000", time.time() + 1.0)
    started = time.monotonic()

    await provider(settings, database, fake_transport).token()

    waited = time.monotonic() - started
    assert (True, 1) == (0.9 <= waited < 3.0, fake.oauth.refreshes), waited


async def test_consent_saved_during_a_refresh_is_not_overwritten(
    make_settings: MakeSettings,
    database: Database,
    fake: FakeAmoState,
    fake_transport: httpx.ASGITransport,
) -> None:
    """`amosync auth exchange` stores a new pair while a slow refresh is in flight: the
    refresh answer is dropped (compare-and-set on the version) and the new consent is used."""
    settings = oauth_settings(make_settings)
    await consent(settings, database, fake, fake_transport, expires_in=timedelta(seconds=-1))
    fake.oauth.answer_delay = 1.0
    refreshing = asyncio.create_task(provider(settings, database, fake_transport).token())
    await wait_for_refresh_request(fake)
    fake.oauth.answer_delay = 0.0  # the refresh answer already in flight stays slow

    fresh = await consent(settings, database, fake, fake_transport)
    token = await refreshing

    row = await stored(settings, database)
    assert (fresh.access_token, fresh.access_token, 2) == (token, row.access_token, row.version)
    assert 1 == fake.oauth.refreshes  # amoCRM did grant it; we just never use that pair


def test_lease_key_fits_the_state_table() -> None:
    """Short accounts keep a readable key; a very long base URL is hashed to fit 64 chars."""
    short = lease_key("https://example.amocrm.ru")
    long = lease_key("https://" + "x" * 80 + ".amocrm.ru")

    assert LEASE_PREFIX + "https://example.amocrm.ru" == short
    assert (True, True) == (len(long) <= 64, long.startswith(LEASE_PREFIX + "sha256:"))
