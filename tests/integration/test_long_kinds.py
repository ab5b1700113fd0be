"""Entity and action names (and a request id) longer than the old VARCHAR columns: stored
and answered 200 on both databases, as SQLite always did (PostgreSQL answered 503)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.settings import Settings
from tests.integration.test_web import FORM, SECRET_URL, events, running


async def test_long_entity_and_action_names_are_stored_as_ignored(
    make_settings: Callable[..., Settings], engine: AsyncEngine
) -> None:
    entity, action = "k" * 40, "a" * 200
    body = f"{entity}[{action}][0][id]=5&leads[update][0][id]=7".encode()
    headers = {**FORM, "X-amoCRM-RequestId": "r" * 300}
    async with running(make_settings(amocrm_subdomain=None)) as client:
        response = await client.post(SECRET_URL, content=body, headers=headers)
        stored = await events(engine)

    assert 200 == response.status_code, response.text
    assert [(entity, action, 5, "ignored"), ("leads", "update", 7, "pending")] == stored
