"""Webhook subscriptions through `/api/v4/webhooks` against the fake amoCRM."""

from __future__ import annotations

import httpx
import pytest

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.amocrm.webhooks import (
    SUBSCRIBED_SETTINGS,
    list_subscriptions,
    subscribe,
    unsubscribe,
)
from amosync.errors import RequestRejected
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, create_fake_amocrm

BASE = "https://testaccount.amocrm.ru"
OURS = "https://sync.example.com/amocrm/0123456789abcdef"
OTHER = "https://other.example.com/hooks/zapier?token=abc123def456"


def client_for(fake: FakeAmoState) -> AmoClient:
    return AmoClient(
        BASE,
        LongLivedToken(DEFAULT_TOKEN),
        SlidingWindowLimiter(50),
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
        backoff_base=0.01,
    )


@pytest.mark.parametrize("post_status", [200, 201])
async def test_subscribe_accepts_200_and_201(post_status: int) -> None:
    """Sources disagree on POST's status; either answer yields the stored subscription."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.webhooks.post_status = post_status

    hook = await subscribe(client_for(fake), OURS)

    assert (OURS, False, SUBSCRIBED_SETTINGS) == (hook.destination, hook.disabled, hook.settings)
    assert [post_status] == [r.status for r in fake.calls("/api/v4/webhooks")]


async def test_registering_twice_keeps_one_subscription() -> None:
    """A second POST for the same URL updates it: the account still has one subscription."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = client_for(fake)

    first = await subscribe(client, OURS, ["add_lead"])
    second = await subscribe(client, OURS)
    listed = await list_subscriptions(client)

    assert first.id == second.id
    assert [(OURS, SUBSCRIBED_SETTINGS)] == [(s.destination, s.settings) for s in listed]


async def test_list_shows_the_disabled_flag_and_register_re_enables() -> None:
    """A subscription amoCRM disabled is listed as disabled; subscribing again enables it."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = client_for(fake)
    await subscribe(client, OURS)
    await subscribe(client, OTHER)
    fake.webhooks.disable(OURS)

    before = {s.destination: s.disabled for s in await list_subscriptions(client)}
    await subscribe(client, OURS)
    after = {s.destination: s.disabled for s in await list_subscriptions(client)}

    assert {OURS: True, OTHER: False} == before
    assert {OURS: False, OTHER: False} == after


async def test_list_filters_by_destination() -> None:
    """`filter[destination]` returns only our subscription; an unknown URL gives none (204)."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = client_for(fake)
    await subscribe(client, OURS)
    await subscribe(client, OTHER)

    ours = await list_subscriptions(client, OURS)
    unknown = await list_subscriptions(client, "https://nobody.example.com/amocrm/x")

    assert [OURS] == [s.destination for s in ours]
    assert [] == unknown
    assert 204 == fake.calls("/api/v4/webhooks")[-1].status


async def test_remove_answers_204_and_the_subscription_is_gone() -> None:
    """DELETE by destination gets 204; the list no longer has it; removing again is False."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = client_for(fake)
    await subscribe(client, OURS)
    await subscribe(client, OTHER)

    removed = await unsubscribe(client, OURS)
    delete_status = fake.calls("/api/v4/webhooks")[-1].status
    left = [s.destination for s in await list_subscriptions(client)]
    again = await unsubscribe(client, OURS)

    assert (True, 204, [OTHER], False) == (removed, delete_status, left, again)


async def test_the_101st_subscription_is_refused() -> None:
    """amoCRM keeps at most 100 webhooks per account; the next one is a clear 4xx."""
    fake = FakeAmoState(rate_limit_rps=None)
    for n in range(100):
        fake.webhooks.subscribe(f"https://h{n}.example.com/amocrm/x", ["add_lead"])

    with pytest.raises(RequestRejected) as caught:
        await subscribe(client_for(fake), OURS)

    assert 400 == caught.value.status
    assert 100 == len(fake.webhooks.all())


async def test_subscribe_refused_for_plain_http_by_the_fake() -> None:
    """Like amoCRM, the fake only subscribes HTTPS destinations (400 with a reason)."""
    fake = FakeAmoState(rate_limit_rps=None)

    with pytest.raises(RequestRejected) as caught:
        await subscribe(client_for(fake), "http://sync.example.com/amocrm/x")

    assert "HTTPS" in str(caught.value)
