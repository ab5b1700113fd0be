"""The fake's `/api/v4/events`: deletions are recorded, every documented query form works."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from amosync.testing import DEFAULT_TOKEN, FakeAmoState, create_fake_amocrm

BASE = "https://testaccount.amocrm.ru"


async def get(fake: FakeAmoState, query: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
        return await http.get(f"/api/v4/events?{query}")


def kinds(response: httpx.Response) -> list[tuple[str, int]]:
    events: list[dict[str, Any]] = response.json()["_embedded"]["events"]
    return [(e["type"], e["entity_id"]) for e in events]


@pytest.fixture
def fake() -> FakeAmoState:
    clock = iter(range(1_700_000_000, 1_800_000_000, 10))
    fake = FakeAmoState(rate_limit_rps=None, wall_clock=lambda: next(clock))
    lead = fake.add_lead()["id"]
    contact = fake.add_contact()["id"]
    fake.delete_lead(lead)  # created_at …020 (each clock read is 10 s later)
    fake.delete_contact(contact)
    fake.restore_lead(lead)
    return fake


async def test_deleting_records_events_newest_first(fake: FakeAmoState) -> None:
    """Delete and restore write `<kind>_deleted|restored` with the entity and a string id."""
    response = await get(fake, "")
    lead = next(iter(fake.leads))
    contact = next(iter(fake.contacts))

    assert 200 == response.status_code
    assert [
        ("lead_restored", lead),
        ("contact_deleted", contact),
        ("lead_deleted", lead),
    ] == kinds(response)
    first = response.json()["_embedded"]["events"][0]
    assert ("lead", str) == (first["entity_type"], type(first["id"]))
    assert f"/api/v4/leads/{lead}" in first["_embedded"]["entity"]["_links"]["self"]["href"]


@pytest.mark.parametrize(
    "query",
    [
        "filter[type][]=lead_deleted&filter[type][]=contact_deleted",
        "filter[type][0]=lead_deleted&filter[type][1]=contact_deleted",
        "filter[type]=lead_deleted,contact_deleted",
    ],
)
async def test_type_filter_in_every_form(fake: FakeAmoState, query: str) -> None:
    """`filter[type]` as `[]`, `[n]` and the comma form select the same events."""
    response = await get(fake, query)

    assert ["contact_deleted", "lead_deleted"] == [t for t, _ in kinds(response)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("filter[created_at][from]=1700000040", ["lead_restored"]),
        ("filter[created_at]=1700000040", ["lead_restored"]),
        ("filter[created_at][to]=1700000030", ["contact_deleted", "lead_deleted"]),
        ("filter[created_at]=1700000025,1700000035", ["contact_deleted"]),
        ("filter[entity][]=contact", ["contact_deleted"]),
        ("filter[entity]=lead", ["lead_restored", "lead_deleted"]),
    ],
)
async def test_created_at_and_entity_filters(
    fake: FakeAmoState, query: str, expected: list[str]
) -> None:
    """Ranges (new, single-value and legacy comma forms) and the entity filter."""
    response = await get(fake, query)

    assert expected == [t for t, _ in kinds(response)]


async def test_pages_and_204_when_empty(fake: FakeAmoState) -> None:
    """`limit` pages with a `next` link; a page past the end, or no match, is 204."""
    first = await get(fake, "limit=2")
    last = await get(fake, "limit=2&page=2")
    past = await get(fake, "limit=2&page=3")
    none = await get(fake, "filter[type][]=company_deleted")

    assert (2, True) == (len(kinds(first)), "next" in first.json()["_links"])
    assert (1, False) == (len(kinds(last)), "next" in last.json()["_links"])
    assert (204, b"") == (past.status_code, past.content)
    assert 204 == none.status_code


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=101", 422),
        ("limit=0", 400),
        ("filter[created_at][from]=yesterday", 400),
        ("filter[entity_id][]=5", 400),
        ("filter[entity][]=lead&filter[entity][]=contact&filter[entity_id][]=5", 400),
    ],
)
async def test_refused_queries(fake: FakeAmoState, query: str, status: int) -> None:
    """Over 100 per page, bad numbers and entity_id without exactly one entity are refused."""
    response = await get(fake, query)

    assert status == response.status_code


async def test_created_at_forms_can_be_refused(fake: FakeAmoState) -> None:
    """The `created_at_forms` knob makes the fake refuse a range form with 400."""
    fake.events.created_at_forms = frozenset({"comma"})

    brackets = await get(fake, "filter[created_at][from]=1700000040")
    comma = await get(fake, "filter[created_at]=1700000040,1800000000")

    assert (400, ["lead_restored"]) == (brackets.status_code, [t for t, _ in kinds(comma)])


async def test_entity_id_filter(fake: FakeAmoState) -> None:
    """`filter[entity_id][]` narrows to those ids of the one named entity."""
    lead = next(iter(fake.leads))

    response = await get(fake, f"filter[entity]=lead&filter[entity_id][]={lead}")

    assert [("lead_restored", lead), ("lead_deleted", lead)] == kinds(response)
