"""The hourly subscription check: what it stores in `amosync_state` and what /health says."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from amosync.amocrm.webhooks import SUBSCRIBED_SETTINGS, our_destination
from amosync.db.database import Database
from amosync.services import build_client
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.web.health import run_checks
from amosync.worker.subscription import check_subscription, subscription_job, subscription_state

PUBLIC = "https://sync.example.com"


def fake_and_transport() -> tuple[FakeAmoState, httpx.ASGITransport]:
    fake = FakeAmoState(rate_limit_rps=None)
    return fake, httpx.ASGITransport(app=create_fake_amocrm(fake))


async def health_of(settings: Settings, database: Database) -> tuple[bool, str] | None:
    checks = await run_checks(settings, database)
    check = checks.get("webhook_subscription")
    return None if check is None else (check.ok, check.detail)


async def test_missing_subscription_is_stored_and_fails_health(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """No subscription for our URL: state `missing`, /health fails naming the command."""
    settings = make_settings(public_url=PUBLIC)
    fake, transport = fake_and_transport()
    fake.webhooks.subscribe("https://other.example.com/hook", ["add_lead"])
    client = build_client(settings, database, transport=transport)

    checked = await check_subscription(settings, database, client)
    stored = await subscription_state(database)
    health = await health_of(settings, database)

    assert checked is not None
    assert stored is not None
    assert ("missing", "missing") == (checked.status, stored.status)
    assert "s3cret-path-0123456789" not in str(stored.as_json())
    assert f"{PUBLIC}/amocrm/s3cr…" == stored.destination
    assert health is not None
    assert False is health[0]
    assert "amosync webhooks register" in health[1]


async def test_disabled_subscription_fails_health_and_enabled_passes(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """An enabled subscription passes; after amoCRM disables it, /health fails saying so."""
    settings = make_settings(public_url=PUBLIC)
    ours = our_destination(settings)
    assert ours is not None
    fake, transport = fake_and_transport()
    fake.webhooks.subscribe(ours, list(SUBSCRIBED_SETTINGS))
    client = build_client(settings, database, transport=transport)

    await check_subscription(settings, database, client)
    enabled = await health_of(settings, database)
    fake.webhooks.disable(ours)
    await check_subscription(settings, database, client)
    disabled = await health_of(settings, database)

    assert enabled is not None
    assert True is enabled[0]
    assert "subscribed and enabled" in enabled[1]
    assert disabled is not None
    assert False is disabled[0]
    assert "disabled by amoCRM" in disabled[1]


async def test_never_checked_is_not_a_failure_and_no_public_url_no_check(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Before the first check /health passes with a note; without a public URL no check shows."""
    with_url = await health_of(make_settings(public_url=PUBLIC), database)
    without_url = await health_of(make_settings(), database)

    assert with_url is not None
    assert True is with_url[0]
    assert "not checked yet" in with_url[1]
    assert None is without_url


async def test_a_failed_check_is_unknown_but_keeps_a_known_disabled_state(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A refused token first stores `unknown` (not a failure); a known `disabled` survives one."""
    settings = make_settings(public_url=PUBLIC)
    ours = our_destination(settings)
    assert ours is not None
    fake, transport = fake_and_transport()
    client = build_client(settings, database, transport=transport)
    fake.revoke_tokens()

    first = await check_subscription(settings, database, client)
    unknown_health = await health_of(settings, database)
    fake.tokens.add("test-token")
    fake.webhooks.subscribe(ours, list(SUBSCRIBED_SETTINGS))
    fake.webhooks.disable(ours)
    await check_subscription(settings, database, client)
    fake.revoke_tokens()
    after_failure = await check_subscription(settings, database, client)

    assert first is not None
    assert "unknown" == first.status
    assert unknown_health is not None
    assert True is unknown_health[0]
    assert after_failure is not None
    assert "disabled" == after_failure.status


async def test_job_spends_one_call_and_skips_while_the_answer_is_fresh(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """The hourly job makes one API call; run again at once (another worker) it makes none."""
    settings = make_settings(public_url=PUBLIC)
    fake, transport = fake_and_transport()
    client = build_client(settings, database, transport=transport)
    job = subscription_job(settings, database, client)
    assert job is not None

    await job.run()
    await job.run()

    assert 1 == len(fake.calls("/api/v4/webhooks"))
    assert 3600.0 == job.interval
    assert None is subscription_job(make_settings(), database, client)
