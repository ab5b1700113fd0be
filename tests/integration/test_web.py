"""The HTTP surface: webhook receiver, n8n endpoint and /health, with the real app and lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from starlette.types import Message

from amosync.db.database import Database
from amosync.db.tables import deals
from amosync.db.tables import webhook_events as ev
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm, rentprog_field
from amosync.web.app import create_app

DATA = Path(__file__).parent.parent / "data"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SECRET_URL = "/amocrm/s3cret-path-0123456789"


@asynccontextmanager
async def running(
    settings: Settings, fake: FakeAmoState | None = None, *, worker: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    fake = fake or FakeAmoState(rate_limit_rps=None)
    app = create_app(
        settings,
        run_worker=worker,
        amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://amosync"
        ) as client,
    ):
        yield client


async def events(database: Database) -> list[tuple[Any, ...]]:
    async with database.read() as conn:
        q = select(ev.c.entity, ev.c.action, ev.c.entity_id, ev.c.status).order_by(ev.c.id)
        return [tuple(r) for r in (await conn.execute(q)).all()]


def fixture(name: str) -> bytes:
    return (DATA / f"{name}.form").read_bytes()


async def test_webhook_is_stored_before_200(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A real leads[add] body is answered 200 and its row is already committed."""
    async with running(make_settings(amocrm_subdomain=None)) as client:
        response = await client.post(
            SECRET_URL, content=fixture("webhook_leads_add_2025_unirock"), headers=FORM
        )
        stored = await events(database)

    assert 200 == response.status_code
    assert {"ok": True, "stored": 1} == response.json()
    assert [("leads", "add", stored[0][2], "pending")] == stored


async def test_webhook_with_an_encoded_nul_is_stored_without_it(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """amoCRM's data may carry U+0000, which PostgreSQL cannot store: the webhook is still
    answered 200 and its row stored, without the character."""
    body = fixture("webhook_leads_add_2025_unirock").replace(b"TEST+MISHA", b"TEST%00+MISHA")
    async with running(make_settings(amocrm_subdomain=None)) as client:
        response = await client.post(SECRET_URL, content=body, headers=FORM)
    async with database.read() as conn:
        payload = (await conn.execute(select(ev.c.payload))).scalar_one()

    assert 200 == response.status_code
    assert "TEST MISHA (SORRY)" == payload["name"]


async def test_every_fixture_is_accepted_and_stored(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Every captured body is accepted; unsynced kinds are kept as `ignored`, none dropped."""
    bodies = sorted(DATA.glob("webhook_*.form"))
    async with running(make_settings(amocrm_subdomain=None)) as client:
        answers = [
            await client.post(SECRET_URL, content=p.read_bytes(), headers=FORM) for p in bodies
        ]
    stored = await events(database)

    assert [200] * len(bodies) == [a.status_code for a in answers]
    assert sum(a.json()["stored"] for a in answers) == len(stored)
    assert {"ignored"} == {
        s for e, a, _, s in stored if e in {"tasks", "unsorted", "message", "talk"}
    }
    assert {"pending"} == {
        s for e, a, _, s in stored if e in {"leads", "contacts", "companies"} and a != "note"
    }


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "reason"),
    [
        ("/amocrm/wrong", b"leads[add][0][id]=1", FORM, 403, "secret"),
        ("/amocrm", b"leads[add][0][id]=1", FORM, 404, "not found"),
        (
            SECRET_URL,
            b"leads[add][0][id]=1",
            {"Content-Type": "application/json"},
            415,
            "content type",
        ),
        (SECRET_URL, b"leads[add][0][id]=1", {}, 415, "content type"),
        (SECRET_URL, b"", FORM, 400, "empty"),
        (SECRET_URL, b"account[subdomain]=testaccount", FORM, 400, "no entity items"),
        (SECRET_URL, b"leads[add][0][name]=x", FORM, 400, "id"),
        (SECRET_URL, b"leads[add][0][id]=%FF%FE", FORM, 400, ""),
        (
            SECRET_URL,
            b"leads[add][0][id]=1&account[subdomain]=otheraccount",
            FORM,
            403,
            "another amoCRM account",
        ),
        (SECRET_URL, b"x=" + b"a" * 2_000_000, FORM, 413, "larger"),
    ],
)
async def test_bad_requests_get_4xx_and_store_nothing(
    make_settings: Callable[..., Settings],
    database: Database,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    """Each kind of bad input gets its own 4xx with a reason, and no row is written."""
    async with running(make_settings()) as client:
        response = await client.post(path, content=body, headers=headers)

    assert status == response.status_code
    assert reason in response.json()["error"]
    assert [] == await events(database)


async def test_plain_path_works_only_without_secret(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Without a configured secret, POST /amocrm is the webhook URL."""
    async with running(make_settings(webhook_secret=None)) as client:
        response = await client.post("/amocrm", content=b"leads[update][0][id]=5", headers=FORM)

    assert 200 == response.status_code
    assert [("leads", "update", 5, "pending")] == await events(database)


async def test_database_failure_answers_503(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """When the inbox cannot be written the receiver answers 503 (amoCRM retries), never 200."""
    settings = make_settings(database_url=f"sqlite:///{tmp_path}/unmigrated.db")
    async with running(settings) as client:
        response = await client.post(SECRET_URL, content=b"leads[update][0][id]=5", headers=FORM)

    assert 503 == response.status_code
    assert "storage unavailable" in response.json()["error"]


async def test_health_reports_named_checks(make_settings: Callable[..., Settings]) -> None:
    """/health is 200 with every check ok when the worker runs, 503 naming the failure when not."""
    async with running(make_settings(), worker=True) as client:
        for _ in range(50):  # the worker's first heartbeat
            healthy = await client.get("/health")
            if healthy.status_code == 200:
                break
            await asyncio.sleep(0.05)
    async with running(make_settings()) as client:
        no_worker = await client.get("/health")

    assert 200 == healthy.status_code
    assert {
        "database",
        "schema",
        "worker",
        "amocrm_credentials",
        "amocrm_api",
        "amocrm_pause",
        "backlog",
        "failed_events",
        "last_webhook",
        "verification",
    } == set(healthy.json()["checks"])
    assert 503 == no_worker.status_code
    assert False is no_worker.json()["checks"]["worker"]["ok"]


async def test_pipeline_end_to_end_in_process(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Webhook in → worker → fake API → deal row with the RentProg ID."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="Booking", custom_fields_values=[rentprog_field("RP-100")])
    body = f"leads[add][0][id]={lead['id']}&account[subdomain]=testaccount".encode()
    async with running(make_settings(), fake, worker=True) as client:
        assert 200 == (await client.post(SECRET_URL, content=body, headers=FORM)).status_code
        for _ in range(100):
            async with database.read() as conn:
                row = (await conn.execute(select(deals.c.name, deals.c.rentprog_id))).first()
            if row:
                break
            await asyncio.sleep(0.05)

    assert ("Booking", "RP-100") == tuple(row or ())


async def test_n8n_push_of_api_lead_is_queued_as_a_hint(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A v4 lead pushed by n8n is queued for the worker to fetch (the answer is unchanged);
    its content is not stored as a deal, and the request path calls no API."""
    fake = FakeAmoState(rate_limit_rps=None)
    lead = (DATA / "api_lead_single_with_contacts_kommo_auladisermx.json").read_bytes()
    async with running(make_settings(), fake) as client:
        response = await client.post(
            "/amocrm/process-webhook",
            content=lead,
            headers={
                "Content-Type": "application/json",
                "X-Amosync-Secret": "s3cret-path-0123456789",
            },
        )
    async with database.read() as conn:
        stored = (await conn.execute(select(deals.c.id))).all()

    assert 200 == response.status_code
    assert {"ok": True, "stored": 1, "mode": "upserted"} == response.json()
    assert [("leads", "push", orjson.loads(lead)["id"], "pending")] == await events(database)
    assert ([], []) == (stored, fake.requests)


async def test_n8n_push_with_nul_is_queued_without_it(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A lead carrying U+0000 (PostgreSQL cannot store it) is queued with the NUL dropped
    from the event's payload, not answered 503 for n8n to retry for ever."""
    lead = orjson.loads(
        (DATA / "api_lead_single_with_contacts_kommo_auladisermx.json").read_bytes()
    )
    lead["name"] = "Kia\u0000 Rio"
    async with running(make_settings(), FakeAmoState(rate_limit_rps=None)) as client:
        response = await client.post(
            "/amocrm/process-webhook",
            content=orjson.dumps(lead),
            headers={
                "Content-Type": "application/json",
                "X-Amosync-Secret": "s3cret-path-0123456789",
            },
        )
    async with database.read() as conn:
        payload = (await conn.execute(select(ev.c.payload))).scalar_one()

    assert (200, "Kia Rio") == (response.status_code, payload["name"])


async def test_n8n_decoded_webhook_is_queued(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A decoded webhook body pushed by n8n is queued like a webhook (secret via query)."""
    body = (DATA / "webhook_leads_update_2025_unirock.json").read_bytes()
    async with running(make_settings(amocrm_subdomain=None)) as client:
        response = await client.post(
            "/amocrm/process-webhook?secret=s3cret-path-0123456789",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    assert 200 == response.status_code
    assert "queued" == response.json()["mode"]
    assert [("leads", "update", "pending")] == [(e, a, s) for e, a, _, s in await events(database)]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{}", {"Content-Type": "application/json"}, 403),
        (
            b"not json",
            {"Content-Type": "application/json", "X-Amosync-Secret": "s3cret-path-0123456789"},
            400,
        ),
        (
            b"[]",
            {"Content-Type": "application/json", "X-Amosync-Secret": "s3cret-path-0123456789"},
            400,
        ),
        (
            b'{"id": "x", "pipeline_id": 1}',
            {"Content-Type": "application/json", "X-Amosync-Secret": "s3cret-path-0123456789"},
            400,
        ),
        (b"leads[add][0][id]=1", {**FORM, "X-Amosync-Secret": "s3cret-path-0123456789"}, 415),
    ],
)
async def test_n8n_bad_input_is_refused(
    make_settings: Callable[..., Settings],
    database: Database,
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    """Wrong secret, bad JSON, empty list, lead without int id, form body: 4xx, nothing stored."""
    async with running(make_settings()) as client:
        response = await client.post("/amocrm/process-webhook", content=body, headers=headers)

    assert status == response.status_code
    assert [] == await events(database)


async def test_other_methods_on_the_webhook_path_get_405_with_allow(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Only POSTs take the fast path; a GET still reaches the router and its 405."""
    async with running(make_settings()) as client:
        response = await client.get(SECRET_URL)

    assert 405 == response.status_code
    assert "POST" in response.headers["allow"]
    assert {"ok": False, "error": "method not allowed"} == response.json()


async def test_webhook_answer_is_compact_json_with_length(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """The raw ASGI answer carries the same bytes and headers JSONResponse would."""
    async with running(make_settings()) as client:
        response = await client.post(SECRET_URL, content=b"leads[update][0][id]=5", headers=FORM)

    assert b'{"ok":true,"stored":1}' == response.content
    assert "application/json" == response.headers["content-type"]
    assert str(len(response.content)) == response.headers["content-length"]


async def test_sender_hanging_up_mid_body_stores_nothing_and_gets_no_answer(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A disconnect before the body is complete writes no row; the next webhook is served."""
    app = create_app(make_settings(), run_worker=False)
    messages: Iterator[Message] = iter(
        [
            {"type": "http.request", "body": b"leads[update][0]", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": SECRET_URL,
        "raw_path": SECRET_URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", FORM["Content-Type"].encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 3000),
    }
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client,
    ):
        await app(scope, receive, send)
        after = await client.post(SECRET_URL, content=b"leads[update][0][id]=6", headers=FORM)

    assert [] == sent
    assert 200 == after.status_code
    assert [("leads", "update", 6, "pending")] == await events(database)
