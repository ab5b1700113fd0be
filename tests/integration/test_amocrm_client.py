"""The amoCRM client against the fake server: batching, pagination, and each error class."""

from __future__ import annotations

import importlib.abc
import sys
import time

import httpx
import pytest

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.errors import IPBlocked, ReauthRequired, RequestRejected, RetryLater
from amosync.testing import (
    DEFAULT_TOKEN,
    FakeAmoState,
    Fault,
    create_fake_amocrm,
    rentprog_field,
    run_fake_in_thread,
)

BASE = "https://testaccount.amocrm.ru"


def client_for(
    fake: FakeAmoState, *, token: str = DEFAULT_TOKEN, rate: float = 50, timeout: float = 5.0
) -> AmoClient:
    return AmoClient(
        BASE,
        LongLivedToken(token),
        SlidingWindowLimiter(rate),
        timeout=timeout,
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
        backoff_base=0.01,
    )


async def test_fetch_by_ids_returns_current_objects_in_one_call() -> None:
    """Three leads come back from one filtered call, with contacts embedded."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [
        fake.add_lead(custom_fields_values=[rentprog_field(f"RP-{n}")], contacts=[(900 + n, True)])[
            "id"
        ]
        for n in range(3)
    ]
    client = client_for(fake)

    leads = await client.fetch_by_ids("leads", ids)

    assert sorted(ids) == sorted(lead["id"] for lead in leads)
    assert 1 == len(fake.calls("/api/v4/leads"))
    assert [{"id": 900, "is_main": True}] == [
        {k: c[k] for k in ("id", "is_main")}
        for c in next(x for x in leads if x["id"] == ids[0])["_embedded"]["contacts"]
    ]
    await client.aclose()


async def test_more_than_250_ids_take_one_call_per_250() -> None:
    """600 ids cost three calls (250 + 250 + 100), never one call per id."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [fake.add_lead()["id"] for _ in range(600)]
    client = client_for(fake)

    leads = await client.fetch_by_ids("leads", ids)

    assert 600 == len(leads)
    assert 3 == len(fake.calls("/api/v4/leads"))
    await client.aclose()


async def test_missing_entities_give_an_empty_answer() -> None:
    """Ids amoCRM does not have (204 No Content) give an empty list, not an error."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = client_for(fake)

    assert [] == await client.fetch_by_ids("contacts", [123456])
    assert [204] == [r.status for r in fake.calls("/api/v4/contacts")]
    await client.aclose()


async def test_wrong_token_raises_reauth_required_without_leaking_it() -> None:
    """A 401 stops with ReauthRequired; the message never contains the token."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = client_for(fake, token="wrong-secret-token")

    with pytest.raises(ReauthRequired) as info:
        await client.fetch_by_ids("leads", [1])

    assert "wrong-secret-token" not in str(info.value)
    assert 1 == len(fake.requests)
    await client.aclose()


async def test_ip_block_raises_ip_blocked() -> None:
    """A 403 stops with IPBlocked at once (no retries that would prolong the block)."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.script_faults(Fault(status=403))
    client = client_for(fake)

    with pytest.raises(IPBlocked):
        await client.fetch_by_ids("leads", [1])
    assert 1 == len(fake.requests)
    await client.aclose()


async def test_server_errors_are_retried_then_succeed() -> None:
    """Two 5xx answers, then success: the call returns data after three requests."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead()
    fake.script_faults(Fault(status=502), Fault(status=500))
    client = client_for(fake)

    leads = await client.fetch_by_ids("leads", [lead["id"]])

    assert [lead["id"]] == [x["id"] for x in leads]
    assert [502, 500, 200] == [r.status for r in fake.requests]
    await client.aclose()


async def test_persistent_server_errors_raise_retry_later() -> None:
    """A 5xx that does not go away becomes RetryLater after three tries."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.script_faults(*[Fault(status=503)] * 5)
    client = client_for(fake)

    with pytest.raises(RetryLater):
        await client.fetch_by_ids("leads", [1])
    assert 3 == len(fake.requests)
    await client.aclose()


async def test_timeouts_are_retried_then_raise_retry_later() -> None:
    """A server on a real port that hangs past the timeout is retried, then RetryLater."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.script_faults(*[Fault(hang=1.0)] * 3)
    with run_fake_in_thread(fake) as base_url:
        client = AmoClient(
            base_url,
            LongLivedToken(DEFAULT_TOKEN),
            SlidingWindowLimiter(50),
            timeout=0.2,
            backoff_base=0.01,
        )
        with pytest.raises(RetryLater) as info:
            await client.fetch_by_ids("leads", [1])
        await client.aclose()
    assert "ReadTimeout" in str(info.value)


async def test_429_waits_retry_after_then_succeeds() -> None:
    """A 429 pauses for `retry_after` from the body, then the same request succeeds."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead()
    fake.script_faults(Fault(status=429, retry_after=1))
    client = client_for(fake)

    started = time.monotonic()
    leads = await client.fetch_by_ids("leads", [lead["id"]])
    waited = time.monotonic() - started

    assert [lead["id"]] == [x["id"] for x in leads]
    assert [429, 200] == [r.status for r in fake.requests]
    assert waited >= 0.95
    await client.aclose()


async def test_other_client_errors_raise_request_rejected() -> None:
    """A 400 is the request's own fault: RequestRejected with the status, not retried."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.script_faults(Fault(status=400))
    client = client_for(fake)

    with pytest.raises(RequestRejected) as info:
        await client.fetch_by_ids("leads", [1])
    assert 400 == info.value.status
    assert 1 == len(fake.requests)
    await client.aclose()


async def test_limiter_keeps_under_amocrm_rate_limit() -> None:
    """30 back-to-back calls at the default 7/s: never more than 7 in any second, no 429."""
    fake = FakeAmoState(rate_limit_rps=7)
    client = client_for(fake, rate=7)

    for _ in range(30):
        await client.fetch_by_ids("leads", [1])

    assert 0 == fake.count_429()
    assert 7 >= fake.max_calls_in_any_window(1.0)
    await client.aclose()


async def test_query_is_encoded_as_httpx_would_encode_it() -> None:
    """The client encodes queries itself (httpx re-quotes long ones a character at a time):
    amoCRM must still get the very bytes httpx would send, whatever the value types."""
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [fake.add_lead()["id"] for _ in range(3)]
    odd: list[tuple[str, str | int | float | bool | None]] = [
        ("filter[updated_at][from]", 1700000000),
        ("with", "contacts,only_deleted"),
        ("query", "Аренда #1 & x=y+z/?%"),
        ("yes", True),
        ("no", False),
        ("none", None),
        ("ratio", 1.5),
    ]
    client = client_for(fake)

    await client.fetch_by_ids("leads", ids)
    await client.get_json("/api/v4/leads", odd)
    await client.get_json("/api/v4/account")
    await client.aclose()

    by_ids = [*[("filter[id][]", i) for i in ids], ("limit", 250), ("with", "contacts")]
    assert [
        str(httpx.QueryParams([*by_ids, ("page", 1)])),
        str(httpx.QueryParams(odd)),
        "",
    ] == [r.query for r in fake.requests]


@pytest.mark.parametrize("base", [BASE, BASE + "/"])
async def test_paths_join_the_base_url_as_httpx_joins_them(base: str) -> None:
    """With or without a trailing slash, the base URL and the path meet at one "/"."""
    fake = FakeAmoState(rate_limit_rps=None)
    client = AmoClient(
        base,
        LongLivedToken(DEFAULT_TOKEN),
        SlidingWindowLimiter(50),
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
    )

    assert await client.get_json("/api/v4/account") is not None
    await client.aclose()
    assert ["/api/v4/account"] == [r.path for r in fake.requests]


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Names whose import got past `sys.modules`: a lookup that walks `sys.path`."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        self.names.append(fullname)


async def test_api_calls_over_real_http_import_nothing_once_warm() -> None:
    """After the first call, a call makes no import that reaches the finders.

    httpcore imports `sniffio` inside every lock it sets up (4 per request); without sniffio
    installed each of those walks sys.path and fails (~60 µs a call on a 2-core VM), which is
    why amosync depends on sniffio. Any other per-call import would show up here too.
    """
    fake = FakeAmoState(rate_limit_rps=None)
    ids = [fake.add_lead()["id"] for _ in range(3)]
    recorder = _ImportRecorder()
    with run_fake_in_thread(fake) as base_url:
        client = AmoClient(base_url, LongLivedToken(DEFAULT_TOKEN), SlidingWindowLimiter(50))
        try:
            await client.fetch_by_ids("leads", ids)  # warm: lazy imports happen once here
            sys.meta_path.insert(0, recorder)
            try:
                for _ in range(3):
                    assert 3 == len(await client.fetch_by_ids("leads", ids))
                assert [] == await client.fetch_by_ids("contacts", [123456])  # the 204 path
            finally:
                sys.meta_path.remove(recorder)
        finally:
            await client.aclose()

    assert [] == recorder.names
