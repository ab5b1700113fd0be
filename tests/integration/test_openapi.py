"""/openapi.json matches the code: schemathesis drives every operation of the live server.

The server runs on a real port with real data (webhooks through the worker to the fake
amoCRM), and every generated request carries the admin bearer token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from starlette.routing import Route

from amosync.settings import Settings
from amosync.testing import create_fake_amocrm
from amosync.web.app import create_app
from amosync.web.openapi import document
from tests.integration.test_read_api import ADMIN, AUTH, SECRET_PATH
from tests.live_app import FORM, demo_fake, serve_app, webhook_body


@pytest.fixture
def live_api(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The app on a port, with 3 deals stored through the pipeline and one failed event.
    Generated requests carry many malformed tokens: the guessing throttle is opened wide."""
    monkeypatch.setattr("amosync.web.throttle.FAILURE_LIMIT", 1_000_000)
    fake = demo_fake(3)
    app = create_app(
        make_settings(admin_token=ADMIN, max_attempts=1),
        amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
    )
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, headers=AUTH) as client:

        def deliver(ids: list[int]) -> None:
            assert (
                200 == client.post(SECRET_PATH, content=webhook_body(ids), headers=FORM).status_code
            )
            deadline = time.monotonic() + 20
            while client.get("/api/events?status=pending").json()["events"]:
                assert time.monotonic() < deadline, "events still pending"
                time.sleep(0.05)

        deliver(sorted(fake.table("leads")))
        deliver([999_999])  # a lead amoCRM does not have: stored as a deletion stub
        yield base_url


# Loaded from the code's own document; the live server must then serve the same (tested).
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_documented(case: schemathesis.Case[Any], live_api: str) -> None:
    """Generated requests (valid and not) get documented statuses and schema-valid bodies."""
    # A cursor is opaque: one this API did not hand out is valid by type yet rightly 400.
    made_up_cursor = bool(case.query and "cursor" in case.query)
    excluded: list[CheckFunction] = [positive_data_acceptance] if made_up_cursor else []
    # A case made invalid through its headers (say, no Authorization) is made valid again
    # by the token every request carries; the other tests cover missing and wrong tokens.
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        excluded.append(negative_data_rejection)
    case.call_and_validate(base_url=live_api, headers=AUTH, excluded_checks=excluded)


def test_served_document_is_the_one_tested(live_api: str) -> None:
    """GET /openapi.json (no token needed) serves exactly the document the tests load."""
    served = httpx.get(f"{live_api}/openapi.json")

    assert 200 == served.status_code
    assert document() == served.json()


def test_document_covers_exactly_the_api_routes(make_settings: Callable[..., Settings]) -> None:
    """Every /api route of the app is in the document with its methods, and nothing more."""
    app = create_app(make_settings(admin_token=ADMIN), run_worker=False)
    routes = {
        (r.path, m.lower())
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith("/api/")
        for m in (r.methods or set()) - {"HEAD"}
    }
    documented = {(path, method) for path, ops in document()["paths"].items() for method in ops}

    assert routes == documented


def test_document_is_valid_openapi_3_1() -> None:
    """The document passes the OpenAPI 3.1 meta-schema; a broken copy does not."""
    broken = document()
    broken["paths"]["/api/deals"]["get"]["responses"] = "none"

    schemathesis.openapi.from_dict(document()).validate()
    with pytest.raises(Exception, match="none"):
        schemathesis.openapi.from_dict(broken).validate()


def deal_filter_schema(name: str) -> dict[str, Any]:
    parameters = document()["paths"]["/api/deals"]["get"]["parameters"]
    found: dict[str, Any] = next(p for p in parameters if p["name"] == name)["schema"]
    return found


@pytest.mark.parametrize(
    ("name", "refused", "accepted"),
    [
        ("rentprog_id", "RP\x001", "RP-1 Иванов"),
        ("q", "Kia\x00", " Kia Rio "),
        ("q", " \t ", "+7 900"),
    ],
)
def test_document_refuses_the_text_the_api_refuses(name: str, refused: str, accepted: str) -> None:
    """A text the API answers 400 (NUL: PostgreSQL cannot compare it; a blank search) is
    outside the documented pattern, so no client of the document expects it to succeed."""
    pattern = deal_filter_schema(name)["pattern"]

    assert re.search(pattern, refused) is None
    assert re.search(pattern, accepted) is not None
