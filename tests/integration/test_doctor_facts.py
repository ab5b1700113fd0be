"""`doctor`'s fact gathering against the fake amoCRM and a real database (no subprocess)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from amosync.amocrm.webhooks import SUBSCRIBED_SETTINGS, our_destination
from amosync.db.database import Database
from amosync.doctor.checks import run_checks
from amosync.doctor.facts import default_service_url, gather
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.testing.fake_custom_fields import lead_field
from amosync.worker.subscription import subscription_state

NOWHERE = "http://127.0.0.1:9"  # discard port: nothing answers


def transport_for(fake: FakeAmoState) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_fake_amocrm(fake))


async def test_gather_spends_four_api_calls_and_stores_the_subscription(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Account, our subscription, lead fields and one user: four calls; the subscription
    answer is kept for /health."""
    settings = make_settings(public_url="https://sync.example.com", rentprog_field_id=700001)
    fake = FakeAmoState(rate_limit_rps=None)
    ours = our_destination(settings)
    assert ours is not None
    fake.webhooks.subscribe(ours, list(SUBSCRIBED_SETTINGS))

    facts = await gather(settings, NOWHERE, transport=transport_for(fake))
    results = {r.name: r.status for r in run_checks(settings, facts)}
    stored = await subscription_state(database)

    assert [
        "/api/v4/account",
        "/api/v4/webhooks",
        "/api/v4/leads/custom_fields",
        "/api/v4/users",
    ] == [r.path for r in fake.calls()]
    checked = ("token", "webhook", "rentprog_field", "user_names", "service")
    assert {
        "token": "ok",
        "webhook": "ok",
        "rentprog_field": "ok",
        "user_names": "ok",
        "service": "fail",
    } == {k: results[k] for k in checked}
    assert stored is not None
    assert "subscribed" == stored.status


async def test_a_refused_token_stops_after_one_call(
    make_settings: Callable[..., Settings],
) -> None:
    """After a 401 on the account the other API probes are skipped, not tried."""
    settings = make_settings(public_url="https://sync.example.com")
    fake = FakeAmoState(rate_limit_rps=None)
    fake.revoke_tokens()

    facts = await gather(settings, NOWHERE, transport=transport_for(fake))

    assert 1 == len(fake.calls())
    assert ("reauth", "skipped", "skipped") == (
        facts.account.kind,
        facts.subscriptions.kind,
        facts.lead_fields.kind,
    )


async def test_lead_fields_are_read_across_pages(
    make_settings: Callable[..., Settings],
) -> None:
    """60 lead fields come in two pages of 50; the RentProg field on page 2 is found."""
    settings = make_settings(public_url="https://sync.example.com", rentprog_field_id=799999)
    fake = FakeAmoState(rate_limit_rps=None)
    fake.lead_custom_fields = [lead_field(780000 + n, f"Поле {n}") for n in range(59)]
    fake.lead_custom_fields.append(lead_field(799999, "RentProg"))

    facts = await gather(settings, NOWHERE, transport=transport_for(fake))

    assert facts.lead_fields.value is not None
    assert 60 == len(facts.lead_fields.value)
    assert 2 == len(fake.calls("/api/v4/leads/custom_fields"))
    assert "ok" == {r.name: r.status for r in run_checks(settings, facts)}["rentprog_field"]


def test_default_service_url_calls_loopback_for_wildcard_addresses(
    make_settings: Callable[..., Settings],
) -> None:
    """0.0.0.0 and :: are listen addresses, not ones to call: loopback is used instead."""
    assert "http://127.0.0.1:3000" == default_service_url(make_settings(host="0.0.0.0"))  # noqa: S104
    assert "http://[::1]:8080" == default_service_url(make_settings(host="::", port=8080))
    assert "http://10.0.0.5:3000" == default_service_url(make_settings(host="10.0.0.5"))


async def test_a_user_list_refused_is_a_warning(
    make_settings: Callable[..., Settings],
) -> None:
    """A non-admin token: /users answers 403; doctor warns (no user names) and the other
    checks still pass: the 403 is not taken for an IP block."""
    settings = make_settings(public_url="https://sync.example.com", rentprog_field_id=700001)
    fake = FakeAmoState(rate_limit_rps=None)
    fake.reference.users_forbidden = True

    facts = await gather(settings, NOWHERE, transport=transport_for(fake))
    results = {r.name: r for r in run_checks(settings, facts)}

    assert "warn" == results["user_names"].status
    assert ("ok", "ok") == (results["token"].status, results["rentprog_field"].status)
