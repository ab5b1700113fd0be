"""Huge integers and out-of-range dates in any query parameter, path id or cursor: a 400
with a reason (or, on the status page, the default), never a 500."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.web.app import create_app
from tests.integration.test_read_api import ADMIN, AUTH
from tests.live_app import serve_app

HUGE = "9" * 5000  # int() refuses more than 4,300 digits with ValueError
ZEROS = "0" * 5000 + "7"
EDGE_DATES = [
    "0001-01-01T00:00:00+01:00",  # UTC of it is before year 1: OverflowError
    "9999-12-31T23:59:59-01:00",  # after year 9999
    "0001-01-01T00:30:00+05:00",
]


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> Iterator[httpx.Client]:
    fake = FakeAmoState(rate_limit_rps=None)
    app = create_app(
        make_settings(admin_token=ADMIN),
        run_worker=False,
        amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
    )
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, headers=AUTH) as http:
        yield http


def reason(response: httpx.Response) -> str:
    assert 400 == response.status_code, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert isinstance(error, str)
    return error


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/deals", {"limit": HUGE}),
        ("/api/events", {"before_id": HUGE}),
        ("/api/events", {"limit": HUGE}),
        (f"/api/deals/{HUGE}", {}),
        (f"/api/contacts/{HUGE}", {}),
        ("/api/deals", {"cursor": cursor_of(f"2026-01-01T00:00:00+00:00|{HUGE}")}),
        *[("/api/deals", {"updated_since": d}) for d in EDGE_DATES],
        *[("/api/deals", {"cursor": cursor_of(f"{d}|5")}) for d in EDGE_DATES],
    ],
)
def test_read_api_answers_400_with_a_reason(
    client: httpx.Client, path: str, params: dict[str, str]
) -> None:
    assert reason(client.get(path, params=params))


def test_leading_zeros_are_only_zeros(client: httpx.Client) -> None:
    assert 200 == client.get("/api/deals", params={"limit": ZEROS}).status_code


def test_retry_of_a_huge_event_id_is_400(client: httpx.Client) -> None:
    response = client.post(f"/api/events/{HUGE}/retry", headers={"Origin": str(client.base_url)})
    assert "event id" in reason(response)


@pytest.mark.parametrize("name", ["refresh", "retried", "not_retried", "q"])
def test_status_page_ignores_huge_numbers(client: httpx.Client, name: str) -> None:
    response = client.get("/", params={name: HUGE, "lang": "en"})
    assert 200 == response.status_code


def test_status_page_retry_of_a_huge_event_id_is_400(client: httpx.Client) -> None:
    response = client.post(f"/status/events/{HUGE}/retry", headers={"Origin": str(client.base_url)})
    assert response.status_code in (400, 403)


_numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=4290, max_value=6000).map(lambda n: "1" * n),
    st.text(alphabet="0123456789+-. eE", max_size=40),
)
_dates = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(
        lambda d, h: f"{d.isoformat()}{'+' if h >= 0 else '-'}{abs(h):02d}:00",
        st.datetimes(),
        st.integers(min_value=-23, max_value=23),
    ),
    st.text(max_size=40),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=_numbers,
    before=_numbers,
    since=_dates,
    at=_dates,
    deal_id=_numbers,
)
def test_no_generated_value_gets_a_500(
    client: httpx.Client, limit: str, before: str, since: str, at: str, deal_id: str
) -> None:
    answers = [
        client.get("/api/deals", params={"limit": limit, "updated_since": since}),
        client.get("/api/deals", params={"cursor": cursor_of(f"{at}|{deal_id}")}),
        client.get("/api/events", params={"before_id": before, "limit": limit}),
        client.get("/", params={"refresh": limit, "retried": before}),
    ]
    assert [a.status_code for a in answers if a.status_code >= 500] == []
