"""The fake amoCRM answers like the real API v4 (shapes from tests/data, rules from its docs)."""

# The project writes `assert expected == actual`, which SIM300 calls a Yoda condition.

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from amosync.testing import (
    DEFAULT_TOKEN,
    FakeAmoState,
    Fault,
    LoggedRequest,
    create_fake_amocrm,
    rentprog_field,
    run_fake_in_thread,
)

DATA = Path(__file__).parents[1] / "data"
BASE_URL = "https://testaccount.amocrm.ru"
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
T0 = 1_700_000_000


def fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class ManualClock:
    """A clock the test moves by hand, so windows and blocks do not depend on machine speed."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(100.0)


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def state(clock: ManualClock, wall: ManualClock) -> FakeAmoState:
    # The limiter is off here; the tests about it switch it on.
    return FakeAmoState(clock=clock, wall_clock=wall, rate_limit_rps=None)


@pytest.fixture
async def client(state: FakeAmoState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_fake_amocrm(state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=AUTH) as c:
        yield c


def ids_of(response: httpx.Response, kind: str = "leads") -> list[int]:
    return [item["id"] for item in response.json()["_embedded"][kind]]


@pytest.mark.parametrize(
    "query",
    [
        "filter[id][]=10000001&filter[id][]=10000003",
        "filter[id][0]=10000001&filter[id][1]=10000003",
        "filter[id]=10000001&filter[id]=10000003",
    ],
)
async def test_filter_by_ids_accepts_every_syntax(
    state: FakeAmoState, client: httpx.AsyncClient, query: str
) -> None:
    """`filter[id][]`, `filter[id][N]` and `filter[id]` all select the named leads."""
    for _ in range(4):
        state.add_lead()
    response = await client.get(f"/api/v4/leads?{query}")
    assert 200 == response.status_code
    assert "application/hal+json" == response.headers["content-type"]
    assert [10000001, 10000003] == ids_of(response)


async def test_pages_link_to_the_next_and_the_last_has_no_next(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """Following `_links.next` walks all pages; the last page has no `next`."""
    for _ in range(5):
        state.add_lead()
    seen: list[int] = []
    pages: list[int] = []
    url = "/api/v4/leads?limit=2"
    while True:
        body = (await client.get(url)).json()
        pages.append(body["_page"])
        seen.extend(item["id"] for item in body["_embedded"]["leads"])
        if "next" not in body["_links"]:
            break
        url = body["_links"]["next"]["href"]
    assert [1, 2, 3] == pages
    assert sorted(state.leads) == seen
    expected_self = f"{BASE_URL}/api/v4/leads?limit=2&page=3"
    assert expected_self == body["_links"]["self"]["href"]


async def test_empty_list_and_missing_entity_are_204_without_body(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """An empty page, a page past the end and a missing id all answer 204 with no body."""
    state.add_lead()
    responses = [
        await client.get("/api/v4/contacts"),
        await client.get("/api/v4/leads?page=2"),
        await client.get("/api/v4/leads/42"),
    ]
    assert [(204, b"")] * 3 == [(r.status_code, r.content) for r in responses]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ""}])
async def test_missing_or_wrong_token_is_401(
    state: FakeAmoState, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Without a known bearer token the API answers the documented 401 problem+json."""
    client.headers.pop("Authorization")
    response = await client.get("/api/v4/leads", headers=headers)
    assert 401 == response.status_code
    assert "application/problem+json" == response.headers["content-type"]
    assert fixture("api_error_401_kommo_docs.json") == response.json()
    assert [False] == [r.token_ok for r in state.requests]


async def test_revoked_tokens_get_401(state: FakeAmoState, client: httpx.AsyncClient) -> None:
    """After `revoke_tokens` the formerly good token is refused."""
    state.revoke_tokens()
    assert 401 == (await client.get("/api/v4/account")).status_code


async def test_eighth_request_within_one_second_is_429_with_retry_after_in_body(
    state: FakeAmoState, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """More than 7 arrivals in one second get 429 with `retry_after` in the body only."""
    state.rate_limit_rps = 7
    state.retry_after_seconds = 3
    statuses = []
    for _ in range(8):
        statuses.append((await client.get("/api/v4/account")).status_code)
        clock.advance(0.1)
    last = await client.get("/api/v4/account")
    assert [200] * 7 + [429] == statuses
    assert 429 == last.status_code
    expected = {
        "title": "Too Many Requests",
        "type": "https://httpstatus.es/429",
        "status": 429,
        "detail": "Too many requests",
        "retry_after": 3,
    }
    assert expected == last.json()
    assert "retry-after" not in last.headers
    assert 2 == state.count_429()


async def test_retry_after_header_is_opt_in(state: FakeAmoState, client: httpx.AsyncClient) -> None:
    """`send_retry_after_header` adds a Retry-After header to rate-limit answers."""
    state.rate_limit_rps, state.send_retry_after_header = 1, True
    await client.get("/api/v4/account")
    assert "1" == (await client.get("/api/v4/account")).headers["retry-after"]


async def test_requests_spaced_over_the_window_are_never_limited(
    state: FakeAmoState, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Seven requests per second, evenly spaced, pass; the log agrees the peak is 7."""
    state.rate_limit_rps = 7
    for _ in range(21):
        assert 200 == (await client.get("/api/v4/account")).status_code
        clock.advance(1 / 7 + 1e-9)
    assert 7 == state.max_calls_in_any_window()


async def test_repeated_violations_block_every_request_with_403(
    state: FakeAmoState, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """After `block_after_violations` 429s the "IP" gets 403 for `block_seconds`, then 200."""
    state.rate_limit_rps, state.block_after_violations, state.block_seconds = 1, 2, 30.0
    statuses = [(await client.get("/api/v4/account")).status_code for _ in range(4)]
    clock.advance(29.0)
    statuses.append((await client.get("/api/v4/leads")).status_code)
    clock.advance(1.0)
    statuses.append((await client.get("/api/v4/account")).status_code)
    assert [200, 429, 429, 403, 403, 200] == statuses


async def test_scripted_500_is_answered_once_then_normal_service(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """A scripted fault hits only the next matching request, with the real 500 body shape."""
    state.script_faults(Fault(status=500), Fault(status=503, retry_after=7))
    first, second, third = [await client.get("/api/v4/account") for _ in range(3)]
    assert (500, 503, 200) == (first.status_code, second.status_code, third.status_code)
    assert set(fixture("api_error_500_kommo_docs.json")) == set(first.json())
    assert ("7", "text/html") == (
        second.headers["retry-after"],
        second.headers["content-type"].split(";")[0],
    )
    assert 0 == state.pending_faults


async def test_faults_only_hit_matching_paths(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """A fault scripted for /api/v4/leads leaves other paths alone until a lead request."""
    state.script_faults(Fault(status=502), path_prefix="/api/v4/leads")
    account = await client.get("/api/v4/account")
    leads = await client.get("/api/v4/leads")
    assert (200, 502) == (account.status_code, leads.status_code)


async def test_hang_fault_delays_then_answers_normally(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """`Fault(hang=s)` holds the request for s seconds and then serves it as usual."""
    state.add_lead()
    state.script_faults(Fault(hang=0.3))
    started = time.monotonic()
    response = await client.get("/api/v4/leads")
    assert (200, True) == (response.status_code, time.monotonic() - started >= 0.3)


async def test_with_contacts_embeds_contact_links_only_when_asked(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """`with=contacts` adds `_embedded.contacts` [{id, is_main, _links}] echoing the query."""
    main = state.add_contact(first_name="Иван", phones=["+79000000001"])
    other = state.add_contact(first_name="Пётр")
    lead = state.add_lead(contacts=[(main["id"], True), (other["id"], False)])
    plain = (await client.get(f"/api/v4/leads/{lead['id']}")).json()
    query = "with=contacts&page=1&limit=250"
    embedded = (await client.get(f"/api/v4/leads?{query}")).json()["_embedded"]["leads"][0]
    expected = [
        {
            "id": main["id"],
            "is_main": True,
            "_links": {"self": {"href": f"{BASE_URL}/api/v4/contacts/{main['id']}?{query}"}},
        },
        {
            "id": other["id"],
            "is_main": False,
            "_links": {"self": {"href": f"{BASE_URL}/api/v4/contacts/{other['id']}?{query}"}},
        },
    ]
    assert expected == embedded["_embedded"]["contacts"]
    assert f"{BASE_URL}/api/v4/leads/{lead['id']}?{query}" == embedded["_links"]["self"]["href"]
    assert ["companies", "tags"] == sorted(plain["_embedded"])


async def test_lead_has_every_field_of_a_real_lead(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """A lead carries the same keys as a real one; empty custom fields are null, not []."""
    real = fixture("api_lead_single_with_contacts_kommo_auladisermx.json")
    contact = state.add_contact()
    bare = state.add_lead()
    full = state.add_lead(
        status_id=143,
        custom_fields_values=[rentprog_field("RP-1")],
        contacts=[(contact["id"], True)],
        tags=["FBD"],
    )
    body = (await client.get(f"/api/v4/leads/{full['id']}?with=contacts")).json()
    assert list(real) == list(body)
    assert list(real["_embedded"]) == list(body["_embedded"])
    assert (None, T0) == (bare["custom_fields_values"], body["closed_at"])
    assert [{"id": 61001, "name": "FBD", "color": None}] == body["_embedded"]["tags"]


async def test_contact_list_matches_the_documented_shape(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """Contacts have the documented keys (plus `is_deleted`) and PHONE/EMAIL with `enum_code`."""
    doc = fixture("api_contacts_list_docs_example.json")["_embedded"]["contacts"][0]
    state.add_contact(first_name="A", phones=[("+7900", "MOB")], emails=["a@example.com"])
    item = (await client.get("/api/v4/contacts")).json()["_embedded"]["contacts"][0]
    expected_keys = sorted([*doc, "is_deleted"])
    assert expected_keys == sorted(item)
    phones = item["custom_fields_values"][0]
    assert ("PHONE", "multitext") == (phones["field_code"], phones["field_type"])
    assert [{"value": "+7900", "enum_id": 800005, "enum_code": "MOB"}] == phones["values"]


async def test_only_deleted_lists_trash_stubs(
    state: FakeAmoState, client: httpx.AsyncClient
) -> None:
    """A deleted lead vanishes from reads and shows up as a stub under `with=only_deleted`."""
    kept = state.add_lead()
    gone = state.add_lead(name="Удалённая", price=500)
    state.delete_lead(gone["id"])
    normal = await client.get("/api/v4/leads")
    single = await client.get(f"/api/v4/leads/{gone['id']}")
    stub = (await client.get("/api/v4/leads?with=only_deleted")).json()["_embedded"]["leads"]
    real = fixture("api_lead_only_deleted_excerpt_real.json")
    assert [kept["id"]] == ids_of(normal)
    assert 204 == single.status_code
    assert [*real, "_links"] == list(stub[0])
    nulls = {k for k, v in stub[0].items() if v is None}
    assert {k for k, v in real.items() if v is None} == nulls
    assert (gone["id"], True, T0 + 1) == (
        stub[0]["id"],
        stub[0]["is_deleted"],
        stub[0]["updated_at"],
    )
    state.restore_lead(gone["id"])
    assert [kept["id"], gone["id"]] == ids_of(await client.get("/api/v4/leads"))


async def test_updated_at_filter_and_order(
    state: FakeAmoState, client: httpx.AsyncClient, wall: ManualClock
) -> None:
    """`filter[updated_at][from|to]` bounds inclusively; `order[updated_at]` sorts both ways."""
    a = state.add_lead()
    wall.advance(10)
    b = state.add_lead()
    wall.advance(10)
    c = state.add_lead()
    wall.advance(10)
    state.update_lead(a["id"], price=10)  # a moves to T0 + 30
    asc = await client.get(
        f"/api/v4/leads?filter[updated_at][from]={T0 + 10}&order[updated_at]=asc"
    )
    desc = await client.get(f"/api/v4/leads?filter[updated_at]={T0 + 10}&order[updated_at]=desc")
    bounded = await client.get(
        f"/api/v4/leads?filter[updated_at][from]={T0 + 10}&filter[updated_at][to]={T0 + 20}"
    )
    assert [b["id"], c["id"], a["id"]] == ids_of(asc)
    assert [a["id"], c["id"], b["id"]] == ids_of(desc)
    assert [b["id"], c["id"]] == ids_of(bounded)


async def test_edits_within_one_second_still_bump_updated_at(state: FakeAmoState) -> None:
    """Each change moves `updated_at` forward by at least one second, like a real account."""
    lead = state.add_lead()
    stamps = [state.update_lead(lead["id"], price=p)["updated_at"] for p in (1, 2, 3)]
    assert [T0 + 1, T0 + 2, T0 + 3] == stamps
    assert T0 + 4 == state.update_lead(lead["id"], status_id=142)["closed_at"]


async def test_limit_over_250_is_422(client: httpx.AsyncClient) -> None:
    """`limit=251` is refused with the documented 422 body."""
    response = await client.get("/api/v4/leads?limit=251")
    assert 422 == response.status_code
    assert fixture("api_error_422_kommo_docs.json") == response.json()


async def test_unknown_path_is_404_problem(client: httpx.AsyncClient) -> None:
    """Paths the API does not have answer 404 problem+json naming the URL."""
    response = await client.get("/api/v4/nothing")
    assert 404 == response.status_code
    assert f"Cannot GET {BASE_URL}/api/v4/nothing" == response.json()["detail"]


async def test_account_carries_our_id_and_subdomain(client: httpx.AsyncClient) -> None:
    """`/api/v4/account` is the documented object with the fake's id and subdomain."""
    body = (await client.get("/api/v4/account?with=datetime_settings")).json()
    doc = fixture("api_account_docs_example.json")
    assert (31000001, "testaccount") == (body["id"], body["subdomain"])
    assert set() == set(body) - set(doc)
    assert doc["_embedded"]["datetime_settings"] == body["_embedded"]["datetime_settings"]


def test_max_calls_in_any_window_counts_the_busiest_second() -> None:
    """The peak counts arrivals spanning strictly less than the window, from the log."""
    state = FakeAmoState()
    for at in (0.0, 0.2, 0.5, 0.9, 1.0, 1.1, 1.15, 3.0):
        state.log_request(LoggedRequest(at, "GET", "/api/v4/leads", "", 200, True))
    assert (6, 1, 8) == (
        state.max_calls_in_any_window(),
        state.max_calls_in_any_window(window=0.01),
        state.max_calls_in_any_window(window=3.1),
    )


def test_real_port_serves_and_a_hang_trips_the_client_timeout() -> None:
    """On a real port the fake answers over TCP, and `Fault(hang=…)` causes a read timeout."""
    state = FakeAmoState()
    lead = state.add_lead()
    with (
        run_fake_in_thread(state) as base_url,
        httpx.Client(base_url=base_url, headers=AUTH, timeout=0.2) as http,
    ):
        first = http.get(f"/api/v4/leads/{lead['id']}")
        state.script_faults(Fault(hang=1.0))
        with pytest.raises(httpx.ReadTimeout):
            http.get("/api/v4/leads")
        after = http.get("/api/v4/leads")
    assert (200, f"{base_url}/api/v4/leads/{lead['id']}") == (
        first.status_code,
        first.json()["_links"]["self"]["href"],
    )
    assert 200 == after.status_code
