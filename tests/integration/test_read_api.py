"""The read API on real data: deals with contacts, RentProg lookup, keyset paging, events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from amosync.db.database import Database
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.web.app import create_app
from tests.live_app import demo_fake, fail_one_event, seed_through_pipeline

SECRET_PATH = "/amocrm/s3cret-path-0123456789"
ADMIN = "admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@asynccontextmanager
async def api(
    settings: Settings, fake: FakeAmoState, client_host: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its worker, reached as if from `client_host`."""
    app = create_app(settings, amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)))
    transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost:3000") as client,
    ):
        yield client


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(admin_token=ADMIN, max_attempts=1)


async def test_deal_by_id_and_by_rentprog_id_come_with_contacts(
    settings: Settings, database: Database
) -> None:
    """A deal stored by the pipeline is served by id and by RentProg ID, with its contact."""
    fake = demo_fake(3)
    async with api(settings, fake) as client:
        lead_ids = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        by_id = await client.get(f"/api/deals/{lead_ids[0]}", headers=AUTH)
        by_rp = await client.get("/api/deals", params={"rentprog_id": "RP-1002"}, headers=AUTH)

    deal = by_id.json()
    assert 200 == by_id.status_code
    assert (lead_ids[0], "RP-1001", "Аренда #1", 1000) == (
        deal["id"],
        deal["rentprog_id"],
        deal["name"],
        deal["price"],
    )
    (contact,) = deal["contacts"]
    assert (True, True, "Клиент 1", ["+79000000001"]) == (
        contact["is_main"],
        contact["stored"],
        contact["name"],
        contact["phones"],
    )
    assert [lead_ids[1]] == [d["id"] for d in by_rp.json()["deals"]]
    assert None is by_rp.json()["next"]


async def test_change_feed_pages_through_every_deal_once(
    settings: Settings, database: Database
) -> None:
    """limit=2 over 5 deals: three pages joined by `next`, each deal once, then `next` null."""
    fake = demo_fake(5)
    async with api(settings, fake) as client:
        lead_ids = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        pages, cursor = [], None
        for _ in range(5):
            params = {"limit": "2", "updated_since": "2020-01-01T00:00:00Z"}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get("/api/deals", params=params, headers=AUTH)).json()
            pages.append([d["id"] for d in body["deals"]])
            cursor = body["next"]
            if cursor is None:
                break
        future = await client.get(
            "/api/deals", params={"updated_since": "2999-01-01T00:00:00+00:00"}, headers=AUTH
        )

    assert [2, 2, 1] == [len(p) for p in pages]
    assert sorted(lead_ids) == sorted(i for p in pages for i in p)
    assert {"deals": [], "next": None} == future.json()


async def test_contact_lists_its_deals(settings: Settings, database: Database) -> None:
    """A contact is served with the ids of the deals it is linked to; unknown ids are 404."""
    fake = demo_fake(2)
    async with api(settings, fake) as client:
        lead_ids = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        deal = (await client.get(f"/api/deals/{lead_ids[1]}", headers=AUTH)).json()
        contact_id = deal["contacts"][0]["id"]
        contact = await client.get(f"/api/contacts/{contact_id}", headers=AUTH)
        missing = await client.get("/api/contacts/999999999", headers=AUTH)

    assert 200 == contact.status_code
    assert [lead_ids[1]] == contact.json()["deal_ids"]
    assert 404 == missing.status_code
    assert "not stored" in missing.json()["error"]


async def test_failed_event_is_listed_and_retried_once(
    settings: Settings, database: Database
) -> None:
    """A fetch refused by amoCRM leaves a failed event; retry requeues it, a second is 409."""
    fake = demo_fake(1)
    async with api(settings, fake) as client:
        (lead,) = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        await fail_one_event(client, database, fake, SECRET_PATH, lead)
        failed = (await client.get("/api/events?status=failed", headers=AUTH)).json()["events"]
        first = await client.post(f"/api/events/{failed[0]['id']}/retry", headers=AUTH)
        second = await client.post(f"/api/events/{failed[0]['id']}/retry", headers=AUTH)
        unknown = await client.post("/api/events/987654321/retry", headers=AUTH)

    assert [(lead, "failed", 1)] == [(e["entity_id"], e["status"], e["attempts"]) for e in failed]
    assert "400" in failed[0]["last_error"]
    assert {"ok": True, "retried": [failed[0]["id"]]} == first.json()
    assert 409 == second.status_code
    assert 404 == unknown.status_code


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/api/deals/abc", "deal id must be a positive integer"),
        ("/api/deals/0", "deal id must be a positive integer"),
        ("/api/deals/99999999999999999999", "deal id must be a positive integer"),
        ("/api/deals?limit=0", "limit must be an integer between 1 and 500"),
        ("/api/deals?limit=x", "limit must be an integer between 1 and 500"),
        ("/api/deals?updated_since=yesterday", "updated_since must be an ISO 8601 date-time"),
        ("/api/deals?cursor=bm9wZQ", "cursor is not one this API returned"),
        ("/api/deals?rentprog_id=", "rentprog_id must be 1 to 255 characters"),
        ("/api/deals?rentprog_id=RP%001", "rentprog_id must not contain NUL"),
        ("/api/events?status=bogus", "unknown status 'bogus'"),
        ("/api/events?before_id=-1", "before_id must be an integer"),
    ],
)
async def test_bad_parameters_get_400_with_a_reason(
    settings: Settings, path: str, reason: str
) -> None:
    """Each kind of bad input is answered 400 naming the parameter and what is allowed."""
    async with api(settings, FakeAmoState()) as client:
        response = await client.get(path, headers=AUTH)

    assert 400 == response.status_code
    assert reason in response.json()["error"]
