"""What the status page shows about the token and the webhook subscription (in-process)."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from amosync.amocrm.webhooks import mask_url, our_destination
from amosync.catchup.state import write_state
from amosync.db.database import Database
from amosync.db.tables import api_requests
from amosync.settings import Settings
from amosync.worker.subscription import (
    SubscriptionState,
    destination_hash,
    save_subscription_state,
)
from tests.english_words import english_words
from tests.integration.test_metrics import jwt_expiring_in
from tests.integration.test_read_api import api
from tests.live_app import demo_fake, seed_through_pipeline

SECRET = "s3cret-path-0123456789"


async def test_token_expiry_and_disabled_subscription_are_shown(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A JWT's expiry and a subscription amoCRM disabled appear, neither secret does."""
    token = jwt_expiring_in(5 * 86400)
    settings = make_settings(
        admin_token=None,
        amocrm_long_lived_token=token,
        public_url="https://sync.example.com",
        webhook_secret=SECRET,
    )
    destination = our_destination(settings)
    assert destination is not None
    await save_subscription_state(
        database,
        SubscriptionState(
            "disabled",
            datetime.now(UTC),
            mask_url(destination, SECRET),
            destination_hash(destination),
        ),
    )
    async with api(settings, demo_fake(0)) as client:
        page = (await client.get("/?lang=en")).text

    token_row = page[page.index('data-check="token"') :].split("</tr>")[0]
    subscription_row = page[page.index('data-check="subscription"') :].split("</tr>")[0]
    # 5 days left, warned from 14: a warning, as /health's amocrm_token_expiry says
    assert 'class="warn">warning' in token_row
    assert "long-lived token expires" in token_row
    assert "(in 5 days)" in token_row
    assert 'class="bad">failing' in subscription_row
    assert "disabled by amoCRM after failed deliveries" in subscription_row
    assert SECRET not in page
    assert token not in page


async def test_without_public_url_the_subscription_is_unknown(
    make_settings: Callable[..., Settings],
) -> None:
    """No AMOSYNC_PUBLIC_URL: nothing to check, and the page says which settings are missing."""
    async with api(make_settings(admin_token=None), demo_fake(0)) as client:
        page = (await client.get("/?lang=ru")).text

    subscription_row = page[page.index('data-check="subscription"') :].split("</tr>")[0]
    assert "неизвестно" in subscription_row
    assert "AMOSYNC_PUBLIC_URL" in subscription_row


async def test_search_finds_a_deal_by_its_amocrm_id(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Searching for a deal id shows that deal; an id nobody has shows the not-found line."""
    fake = demo_fake(2)
    async with api(make_settings(admin_token=None), fake) as client:
        lead_ids = await seed_through_pipeline(
            client, database, fake, "/amocrm/s3cret-path-0123456789"
        )
        found = (await client.get("/", params={"q": str(lead_ids[1]), "lang": "en"})).text
        missing = (await client.get("/", params={"q": "424242", "lang": "en"})).text

    assert f'data-deal-id="{lead_ids[1]}"' in found
    assert "RP-1002" in found
    assert f'data-deal-id="{lead_ids[0]}"' not in found
    assert "No deal found for “424242”." in missing


async def test_search_for_text_with_nul_finds_nothing(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A NUL in the search (PostgreSQL refuses it in a comparison) is not a server error:
    no stored RentProg ID can hold one."""
    async with api(make_settings(admin_token=None), demo_fake(1)) as client:
        response = await client.get("/", params={"q": "RP-1\x00001", "lang": "en"})

    assert 200 == response.status_code
    assert "No deal found for" in response.text


def rows_by_check(page: str) -> dict[str, str]:
    """`data-check` → `data-state` of the page's health table."""
    found = re.findall(r'<tr data-check="([a-z_]+)" data-state="([a-z]+)"', page)
    return dict(found)


@pytest.mark.parametrize(
    ("lang", "title", "why", "fix"),
    [
        (
            "en",
            "Sync is paused.",
            ("blocked this IP (403)", "until "),
            "an IP block or a rate-limit pause ends by itself",
        ),
        (
            "ru",
            "Синхронизация приостановлена.",
            ("заблокировал этот IP (403)", "до "),
            "заканчиваются сами",
        ),
    ],
)
async def test_paused_sync_shows_a_red_banner_agreeing_with_health(
    make_settings: Callable[..., Settings],
    database: Database,
    lang: str,
    title: str,
    why: tuple[str, str],
    fix: str,
) -> None:
    """amoCRM blocked the IP (the shared pause row): a banner says sync is paused, why (the
    failing check's detail, with until when) and what to do; every check's state on the page
    is the state /health answers."""
    async with database.write() as conn:
        until = time.time() + 900
        value = {"slots": [], "paused_until": 0.0, "blocked_until": until}
        await write_state(conn, "amocrm_rate_limit", value)
    async with api(make_settings(admin_token=None), demo_fake(0)) as client:
        page = (await client.get(f"/?lang={lang}")).text
        health = (await client.get("/health")).json()

    banner = page[page.index('id="sync-banner"') :].split("</div>\n</div>")[0]
    assert 'data-reason="paused"' in banner
    assert title in banner
    assert why[0] in banner  # the failing check's detail, in the page's language
    assert why[1] in banner
    assert fix in banner
    on_page = rows_by_check(page)
    assert {name: c["state"] for name, c in health["checks"].items() if name in on_page} == {
        name: state for name, state in on_page.items() if name in health["checks"]
    }
    assert "fail" == on_page["amocrm_pause"]


async def test_refused_token_shows_failing_token_row_and_banner(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """The last answered amoCRM call was a 401: the token row is failing (not "ok" beside a
    failing credentials check) and the banner says so, in Russian too."""
    async with database.write() as conn:
        await conn.execute(
            insert(api_requests).values(
                at=datetime.now(UTC),
                method="GET",
                path="/api/v4/leads",
                status=401,
                duration_ms=5,
                purpose="webhook",
            )
        )
    async with api(make_settings(admin_token=None), demo_fake(0)) as client:
        page = (await client.get("/?lang=ru")).text

    assert "fail" == rows_by_check(page)["token"]
    assert "fail" == rows_by_check(page)["amocrm_credentials"]
    token_row = page[page.index('data-check="token"') :].split("</tr>")[0]
    assert "в порядке" not in token_row
    assert "Синхронизация приостановлена: amoCRM не принимает наш токен." in page


async def test_healthy_page_has_no_banner(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    async with api(make_settings(admin_token=None), demo_fake(0)) as client:
        for _ in range(50):  # the worker's first heartbeat
            if (await client.get("/health")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        page = (await client.get("/?lang=en")).text

    assert 'id="sync-banner"' not in page


def visible_text(page: str) -> str:
    """The words a reader sees: no markup, style, script or attribute values."""
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.DOTALL)
    text = re.sub(r"<[^>]*>", " ", page)
    return html.unescape(text)


async def test_russian_page_has_no_english_words_beyond_names_and_ids(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Token warning, disabled subscription, a 403 pause, a refused call: every check's name,
    state and detail in Russian (issue #22)."""
    settings = make_settings(
        admin_token=None,
        amocrm_long_lived_token=jwt_expiring_in(5 * 86400),
        public_url="https://sync.example.com",
        webhook_secret=SECRET,
    )
    destination = our_destination(settings)
    assert destination is not None
    await save_subscription_state(
        database,
        SubscriptionState(
            "disabled",
            datetime.now(UTC),
            mask_url(destination, SECRET),
            destination_hash(destination),
        ),
    )
    async with database.write() as conn:
        value = {"slots": [], "paused_until": 0.0, "blocked_until": time.time() + 900}
        await write_state(conn, "amocrm_rate_limit", value)
        await conn.execute(
            insert(api_requests).values(
                at=datetime.now(UTC),
                method="GET",
                path="/api/v4/leads",
                status=401,
                duration_ms=5,
                purpose="webhook",
            )
        )
    async with api(settings, demo_fake(0)) as client:
        page = (await client.get("/?lang=ru")).text
        english = (await client.get("/?lang=en")).text

    assert [] == english_words(visible_text(page))
    assert {"alive", "refused", "paused"} <= set(english_words(visible_text(english)))


async def test_times_on_the_page_are_in_amosync_timezone(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """AMOSYNC_TIMEZONE=Europe/Moscow: the page's times carry MSK and +03:00, not UTC;
    /health JSON keeps UTC with an offset."""
    async with api(make_settings(admin_token=None, timezone="Europe/Moscow"), demo_fake(0)) as c:
        page = (await c.get("/?lang=ru")).text
        health = (await c.get("/health")).json()

    refreshed = page[page.index('id="refreshed-at"') :].split("</span>")[0]
    assert refreshed.endswith("MSK (UTC+03:00)"), refreshed
    assert " UTC<" not in page
    assert all(
        c["since"] is None or c["since"].endswith("+00:00") for c in health["checks"].values()
    ), health
