"""Entity and action names (and a request id) longer than the old VARCHAR columns: stored
and answered 200 on both databases, as SQLite always did (PostgreSQL answered 503). A
RentProg value longer than its column does not stop the worker either."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import insert, select

from amosync.db.database import Database
from amosync.db.tables import deals
from amosync.db.tables import webhook_events as ev
from amosync.settings import Settings
from amosync.testing import FakeAmoState, rentprog_field
from tests.integration.test_web import FORM, SECRET_URL, events, running
from tests.integration.test_worker import event, make_worker


async def test_long_entity_and_action_names_are_stored_as_ignored(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    entity, action = "k" * 40, "a" * 200
    body = f"{entity}[{action}][0][id]=5&leads[update][0][id]=7".encode()
    headers = {**FORM, "X-amoCRM-RequestId": "r" * 300}
    async with running(make_settings(amocrm_subdomain=None)) as client:
        response = await client.post(SECRET_URL, content=body, headers=headers)
        stored = await events(database)

    assert 200 == response.status_code, response.text
    assert [(entity, action, 5, "ignored"), ("leads", "update", 7, "pending")] == stored


async def test_a_rentprog_value_longer_than_its_column_does_not_block_the_worker(
    database: Database,
) -> None:
    """A 300-character RentProg field used to fail the upsert on PostgreSQL (VARCHAR(255)),
    and the worker retried that batch forever. The column is text now: stored as sent."""
    fake = FakeAmoState(rate_limit_rps=None)
    long_value = "R" * 300
    lead = fake.add_lead(custom_fields_values=[rentprog_field(long_value)])
    async with database.write() as conn:
        await conn.execute(insert(ev), [event("leads", lead["id"])])
    worker = make_worker(database, fake)
    await worker.run_once()
    async with database.read() as conn:
        stored = (await conn.execute(select(deals.c.rentprog_id, deals.c.custom_fields))).all()
        statuses = (await conn.execute(select(ev.c.status))).scalars().all()
    assert ["done"] == list(statuses)
    [(rentprog_id, custom_fields)] = stored
    assert long_value == rentprog_id
    assert long_value in str(custom_fields)
