"""The fake amoCRM as the account in the setup guide: it delivers webhooks to its subscriptions,
issues consent codes and long-lived JWTs, and takes `http://127.0.0.1` destinations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from amosync.amocrm.jwt_claims import token_expires_at
from amosync.core.form import decode_php_form
from amosync.core.webhook import parse_webhook
from amosync.testing import (
    DEFAULT_TOKEN,
    RENTPROG_FIELD_ID,
    FakeAmoState,
    create_fake_amocrm,
    run_fake_in_thread,
)
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REDIRECT_URI
from tests.live_app import serve_app

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


class Receiver:
    """A webhook endpoint on a real port that records what it got (answer: `status`)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0

    async def endpoint(self, request: Request) -> Response:
        self.got.append((request.url.path, dict(request.headers), await request.body()))
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        return Response(status_code=self.status)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rec.endpoint, methods=["POST"])])
    with serve_app(app) as url:
        yield rec, url


@pytest.fixture
def fake() -> Iterator[tuple[FakeAmoState, str]]:
    state = FakeAmoState(rate_limit_rps=None)
    with run_fake_in_thread(state) as url:
        yield state, url


def subscribe(base: str, destination: str, settings: list[str]) -> httpx.Response:
    body = {"destination": destination, "settings": settings, "sort": 10}
    return httpx.post(f"{base}/api/v4/webhooks", json=body, headers=AUTH)


def control(base: str, path: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{base}/_fake/{path}", json=body)
    assert 200 == response.status_code, response.text
    answer: dict[str, Any] = response.json()
    return answer


def settle(state: FakeAmoState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while state.deliveries.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert 0 == state.deliveries.pending


def test_deal_actions_deliver_amocrm_forms_to_subscribed_destinations_only(
    fake: tuple[FakeAmoState, str], receiver: tuple[Receiver, str]
) -> None:
    """create/update/move/delete each POST the v2 form body to subscribers of that event."""
    state, base = fake
    rec, rurl = receiver
    assert (
        201
        == subscribe(
            base, f"{rurl}/all", ["add_lead", "update_lead", "status_lead", "delete_lead"]
        ).status_code
    )
    assert 201 == subscribe(base, f"{rurl}/contacts", ["add_contact"]).status_code

    lead = control(base, "leads", name="Аренда тест", price=1500, rentprog_id="RP-77")["lead"]
    lead_id = lead["id"]
    control(base, f"leads/{lead_id}", name="Аренда тест 2")
    control(base, f"leads/{lead_id}/move", status_id=142)
    control(base, f"leads/{lead_id}/delete")
    settle(state)

    paths = [p for p, _, _ in rec.got]
    assert ["/all"] * 5 == paths  # add, update, status + update (the move), delete
    bodies = [decode_php_form(b) for _, _, b in rec.got]
    add = bodies[0]["leads"]["add"][0]
    assert str(lead_id) == add["id"]
    assert "Аренда тест" == add["name"]
    assert "1500" == add["price"]
    field = add["custom_fields"][0]
    assert str(RENTPROG_FIELD_ID) == field["id"]
    assert "RP-77" == field["values"][0]["value"]
    assert {"subdomain": state.subdomain, "id": str(state.account_id)} == {
        k: bodies[0]["account"][k] for k in ("subdomain", "id")
    }
    assert "Аренда тест 2" == bodies[1]["leads"]["update"][0]["name"]
    status = bodies[2]["leads"]["status"][0]
    assert "142" == status["status_id"]
    assert status["old_status_id"] != "142"
    assert "142" == bodies[3]["leads"]["update"][0]["status_id"]
    assert {"id", "status_id", "pipeline_id"} == set(bodies[4]["leads"]["delete"][0])
    # the bytes are PHP-encoded (brackets %5B%5D, space +), headers as amoCRM's
    _, headers, raw = rec.got[0]
    assert raw.startswith(b"account%5Bsubdomain%5D=")
    assert "application/x-www-form-urlencoded" == headers["content-type"]
    assert headers["user-agent"].startswith("amoCRM-Webhooks/")
    assert headers["x-amocrm-requestid"]
    # amosync's own parser takes every one of them
    assert [lead_id] * 5 == [parse_webhook(b).items[0].entity_id for _, _, b in rec.got]


def test_contact_actions_deliver_contacts_forms(
    fake: tuple[FakeAmoState, str], receiver: tuple[Receiver, str]
) -> None:
    state, base = fake
    rec, rurl = receiver
    subscribe(base, f"{rurl}/c", ["add_contact", "update_contact", "delete_contact"])
    contact_id = control(base, "contacts", name="Иван", phone="+79001234567")["contact"]["id"]
    control(base, f"contacts/{contact_id}", name="Иван П.")
    control(base, f"contacts/{contact_id}/delete")
    settle(state)

    bodies = [decode_php_form(b)["contacts"] for _, _, b in rec.got]
    assert ["add", "update", "delete"] == [next(iter(b)) for b in bodies]
    assert "contact" == bodies[0]["add"][0]["type"]
    assert "Иван П." == bodies[1]["update"][0]["name"]


def test_a_deal_is_created_with_its_main_contact(fake: tuple[FakeAmoState, str]) -> None:
    """`contact_id` links the new deal to a contact (created with a phone and an e-mail)."""
    _, base = fake
    made = control(base, "contacts", name="Иван", phone="+79001234567", email="i@example.com")
    contact_id = made["contact"]["id"]
    lead_id = control(base, "leads", name="Аренда", contact_id=contact_id)["lead"]["id"]

    lead = httpx.get(f"{base}/api/v4/leads/{lead_id}?with=contacts", headers=AUTH).json()
    contact = httpx.get(f"{base}/api/v4/contacts/{contact_id}", headers=AUTH).json()

    linked = lead["_embedded"]["contacts"]
    assert [(contact_id, True)] == [(c["id"], c["is_main"]) for c in linked]
    codes = {f["field_code"]: f["values"][0]["value"] for f in contact["custom_fields_values"]}
    assert {"PHONE": "+79001234567", "EMAIL": "i@example.com"} == codes
    missing = httpx.post(f"{base}/_fake/leads", json={"name": "x", "contact_id": 999})
    assert 404 == missing.status_code


def test_more_than_100_failures_disable_the_destination(
    fake: tuple[FakeAmoState, str], receiver: tuple[Receiver, str]
) -> None:
    """Default rule, as amoCRM documents it: the 100th failure keeps it, the 101st disables it."""
    state, base = fake
    rec, rurl = receiver
    rec.status = 500
    destination = f"{rurl}/failing"
    subscribe(base, destination, ["add_lead"])
    for _ in range(100):
        control(base, "leads")
    settle(state)
    assert state.webhooks.get(destination) is not None
    assert not state.webhooks.get(destination).disabled  # type: ignore[union-attr]

    control(base, "leads")
    settle(state)
    listed = httpx.get(f"{base}/api/v4/webhooks", headers=AUTH).json()["_embedded"]["webhooks"]
    assert [True] == [h["disabled"] for h in listed]
    assert 0 == control(base, "leads")["queued"]  # nothing is sent to a disabled one
    stats = httpx.get(f"{base}/_fake/deliveries").json()["destinations"][destination]
    assert {"failed": 101, "disabled": True, "last_result": "500"}.items() <= stats.items()


def test_a_slow_answer_is_a_failure_after_2_seconds(
    fake: tuple[FakeAmoState, str], receiver: tuple[Receiver, str]
) -> None:
    state, base = fake
    rec, rurl = receiver
    # An answer 3x the 2 s timeout: the fake gave up on it if it is done well before the
    # answer came (the margin is for a loaded machine; the timeout itself is the fake's).
    rec.delay = 6.0
    subscribe(base, f"{rurl}/slow", ["add_lead"])
    started = time.monotonic()
    control(base, "leads")
    settle(state)
    assert time.monotonic() - started < 5.0
    stats = state.deliveries.stats[f"{rurl}/slow"]
    assert (0, 1, "timeout") == (stats.delivered, stats.failed, stats.last_result)


def test_disable_control_and_re_registering_enables_again(
    fake: tuple[FakeAmoState, str], receiver: tuple[Receiver, str]
) -> None:
    state, base = fake
    rec, rurl = receiver
    destination = f"{rurl}/x"
    subscribe(base, destination, ["add_lead"])
    assert {"disabled": destination} == control(base, "webhooks/disable", destination=destination)
    assert 0 == control(base, "leads")["queued"]
    missing = httpx.post(f"{base}/_fake/webhooks/disable", json={"destination": "https://no"})
    assert 404 == missing.status_code
    subscribe(base, destination, ["add_lead"])
    assert 1 == control(base, "leads")["queued"]
    settle(state)
    assert 1 == len(rec.got)


def test_bad_control_input_is_a_clear_400(fake: tuple[FakeAmoState, str]) -> None:
    _, base = fake
    assert 400 == httpx.post(f"{base}/_fake/leads", json={"price": "lots"}).status_code
    assert 400 == httpx.post(f"{base}/_fake/leads", content=b"[1]").status_code
    assert 400 == httpx.post(f"{base}/_fake/leads", json={"name": "x" * 300}).status_code
    assert 404 == httpx.post(f"{base}/_fake/leads/1/move", json={"status_id": 1}).status_code
    assert 400 == httpx.post(f"{base}/_fake/leads", content=b"x" * 20_000).status_code


def test_the_control_page_form_creates_a_deal(fake: tuple[FakeAmoState, str]) -> None:
    state, base = fake
    assert "Create a deal" in httpx.get(f"{base}/_fake/").text
    done = httpx.post(f"{base}/_fake/leads", data={"name": "From the page", "price": "10"})
    assert 303 == done.status_code
    assert done.headers["location"].startswith("/_fake/?done=")
    assert ["From the page"] == [
        e.fields["name"] for e in state.leads.values() if e.fields["name"] == "From the page"
    ]


@pytest.mark.parametrize(
    ("destination", "status"),
    [
        ("http://127.0.0.1:3000/amocrm/s", 201),
        ("http://localhost:3000/amocrm/s", 201),
        ("http://[::1]:3000/amocrm/s", 201),
        ("https://sync.example.com/amocrm/s", 201),
        ("http://sync.example.com/amocrm/s", 400),
        ("http://10.0.0.5/amocrm/s", 400),
        ("http://127.0.0.1.example.com/amocrm/s", 400),
        ("http://[::1/amocrm/s", 400),
    ],
)
async def test_plain_http_only_for_this_machine(destination: str, status: int) -> None:
    state = FakeAmoState()
    transport = httpx.ASGITransport(app=create_fake_amocrm(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        body = {"destination": destination, "settings": ["add_lead"]}
        response = await client.post("/api/v4/webhooks", json=body, headers=AUTH)
    assert status == response.status_code


def test_consent_page_redirects_with_a_code_that_exchanges(fake: tuple[FakeAmoState, str]) -> None:
    """GET /oauth → Allow → 302 to the redirect URI with code, state, referer, client_id."""
    _state, base = fake
    page = httpx.get(f"{base}/oauth", params={"client_id": FAKE_CLIENT_ID, "state": "st1"})
    assert 200 == page.status_code
    assert "Allow" in page.text
    allowed = httpx.post(
        f"{base}/oauth", data={"client_id": FAKE_CLIENT_ID, "state": "st1", "answer": "allow"}
    )
    assert 302 == allowed.status_code
    location = allowed.headers["location"]
    assert location.startswith(FAKE_REDIRECT_URI + "?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert {"state": "st1", "referer": "127.0.0.1", "client_id": FAKE_CLIENT_ID}.items() <= (
        query.items()
    )
    grant = {
        "client_id": FAKE_CLIENT_ID,
        "client_secret": FAKE_CLIENT_SECRET,
        "grant_type": "authorization_code",
        "code": query["code"],
        "redirect_uri": FAKE_REDIRECT_URI,
    }
    tokens = httpx.post(f"{base}/oauth2/access_token", json=grant)
    assert 200 == tokens.status_code
    assert token_expires_at(tokens.json()["access_token"]) is not None

    denied = httpx.post(
        f"{base}/oauth", data={"client_id": FAKE_CLIENT_ID, "state": "st2", "answer": "deny"}
    )
    assert denied.headers["location"].endswith("?error=access_denied&state=st2")
    unknown = httpx.get(f"{base}/oauth", params={"client_id": "nope", "state": "s"})
    assert 400 == unknown.status_code
    assert "location" not in unknown.headers


def test_long_lived_token_is_a_jwt_that_expires(fake: tuple[FakeAmoState, str]) -> None:
    state, base = fake
    token = control(base, "tokens", days=30)["token"]
    expires = token_expires_at(token)
    assert expires is not None
    assert abs(expires.timestamp() - (time.time() + 30 * 86400)) < 60
    bearer = {"Authorization": f"Bearer {token}"}
    assert 200 == httpx.get(f"{base}/api/v4/account", headers=bearer).status_code
    state.oauth.now = lambda: time.time() + 31 * 86400
    assert 401 == httpx.get(f"{base}/api/v4/account", headers=bearer).status_code
    assert 400 == httpx.post(f"{base}/_fake/tokens", json={"days": 0}).status_code


async def test_control_calls_do_not_spend_the_api_rate_limit() -> None:
    """The person clicking in amoCRM's UI does not use the integration's 7 requests/s."""
    state = FakeAmoState(rate_limit_rps=2)
    transport = httpx.ASGITransport(app=create_fake_amocrm(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://fake") as client:
        statuses = [(await client.get("/_fake/deliveries")).status_code for _ in range(5)]
        api = [(await client.get("/api/v4/account", headers=AUTH)).status_code for _ in range(2)]
    assert [200] * 5 == statuses
    assert [200, 200] == api


def test_a_full_delivery_queue_drops_and_counts(
    fake: tuple[FakeAmoState, str], receiver: tuple[Receiver, str]
) -> None:
    """Tuned: a queue of 1 behind a slow destination keeps 1 waiting and drops the rest."""
    state, base = fake
    rec, rurl = receiver
    rec.delay = 0.5
    state.deliveries.queue_size = 1
    subscribe(base, f"{rurl}/slow", ["add_lead"])
    queued = [control(base, "leads")["queued"] for _ in range(4)]
    settle(state)
    assert 2 <= sum(queued) < 4  # one being sent, one waiting; the others dropped
    assert 4 - sum(queued) == state.deliveries.dropped
    assert sum(queued) == len(rec.got)
