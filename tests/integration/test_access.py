"""Access control for the page, read API and metrics; CSRF; nothing secret on any page."""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable

import httpx
import pytest

from amosync.db.database import Database
from amosync.settings import Settings
from amosync.testing import DEFAULT_TOKEN
from amosync.web.sessions import shared_signing_key
from tests.integration.test_read_api import ADMIN, AUTH, SECRET_PATH, api
from tests.live_app import demo_fake, fail_one_event, seed_through_pipeline

REMOTE = "203.0.113.7"
PRIVATE = ["/", "/status/live", "/api/deals", "/api/events", "/metrics"]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def log_in(client: httpx.AsyncClient, token: str = ADMIN) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login", data={"token": token, "csrf_token": csrf_of(form.text), "lang": "en"}
    )


async def own_csrf(database: Database, browser: str) -> str:
    """The field the page would render for this CSRF cookie in loopback mode."""
    digest = hmac.new(await shared_signing_key(database), f"csrf\0{browser}\0".encode(), "sha256")
    return digest.hexdigest()


@pytest.mark.parametrize("path", ["/api/deals", "/api/events", "/api/deals/1", "/metrics"])
async def test_api_without_token_is_401_with_reason(
    make_settings: Callable[..., Settings], path: str
) -> None:
    """No Authorization header: 401 naming the missing bearer token; a wrong one: 401 too."""
    async with api(make_settings(admin_token=ADMIN), demo_fake(0)) as client:
        missing = await client.get(path)
        wrong = await client.get(path, headers={"Authorization": "Bearer nope"})
        basic = await client.get(path, headers={"Authorization": "Basic " + "x" * 8})
        right = await client.get(path, headers=AUTH)

    assert (401, 401, 401) == (missing.status_code, wrong.status_code, basic.status_code)
    assert "missing bearer token" in missing.json()["error"]
    assert "invalid bearer token" == wrong.json()["error"]
    assert "Bearer" in missing.headers["www-authenticate"]
    assert right.status_code in (200, 404)


async def test_without_admin_token_only_loopback_is_served(
    make_settings: Callable[..., Settings],
) -> None:
    """No AMOSYNC_ADMIN_TOKEN: loopback clients get in (and are told so), others get 403."""
    settings = make_settings(admin_token=None)
    async with api(settings, demo_fake(0), client_host=REMOTE) as client:
        remote = [await client.get(p) for p in PRIVATE]
    async with api(settings, demo_fake(0), client_host="::1") as client:
        local = [await client.get(p) for p in PRIVATE]
        login = await client.get("/login")

    assert [403] * len(PRIVATE) == [r.status_code for r in remote]
    assert "loopback clients (127.0.0.1, ::1) only" in remote[0].json()["error"]
    assert [200] * len(PRIVATE) == [r.status_code for r in local]
    assert "served to this machine (loopback) only" in local[0].text
    assert (303, "/?lang=en") == (login.status_code, login.headers["location"])


async def test_page_wants_login_then_session_cookie_or_basic_auth(
    make_settings: Callable[..., Settings],
) -> None:
    """The page redirects to /login; a wrong token is refused; the right one opens a session."""
    async with api(make_settings(admin_token=ADMIN), demo_fake(0), client_host=REMOTE) as client:
        anonymous = await client.get("/")
        refused = await log_in(client, "not-the-token")
        accepted = await log_in(client)
        page = await client.get("/")
        logout = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
        after_logout = await client.get("/status/live")
        basic = await client.get(
            "/",
            headers={
                "Authorization": "Basic " + base64.b64encode(f"ops:{ADMIN}".encode()).decode()
            },
        )

    assert (303, "/login?lang=en") == (anonymous.status_code, anonymous.headers["location"])
    assert 401 == refused.status_code
    assert "Wrong token." in refused.text
    assert (303, "/?lang=en") == (accepted.status_code, accepted.headers["location"])
    assert 200 == page.status_code
    assert "amosync status" in page.text
    assert 303 == logout.status_code
    assert 401 == after_logout.status_code
    assert 200 == basic.status_code


async def test_retry_form_needs_the_csrf_token(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """A forged POST (no token, wrong token, or cross-site) is 403; the page's own form works."""
    fake = demo_fake(1)
    async with api(make_settings(admin_token=ADMIN, max_attempts=1), fake) as client:
        (lead,) = await seed_through_pipeline(client, database, fake, SECRET_PATH)
        await fail_one_event(client, database, fake, SECRET_PATH, lead)
        await log_in(client)
        page = await client.get("/?events=failed")
        found = re.search(r'action="/status/events/(\d+)/retry"', page.text)
        assert found is not None
        event_id = found.group(1)
        url = f"/status/events/{event_id}/retry"
        token = csrf_of(page.text)
        no_token = await client.post(url, data={})
        wrong = await client.post(url, data={"csrf_token": "x" * 43})
        cross = await client.post(
            url, data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        still_failed = await client.get("/api/events?status=failed", headers=AUTH)
        ok = await client.post(url, data={"csrf_token": token, "back": "/?events=failed"})
        after = await client.get(ok.headers["location"])

    assert [403, 403, 403] == [no_token.status_code, wrong.status_code, cross.status_code]
    assert "missing CSRF token" in no_token.text
    assert "CSRF token mismatch" in wrong.text
    assert "cross-site request refused" in cross.text
    assert 1 == len(still_failed.json()["events"])
    assert (303, f"/?events=failed&retried={event_id}") == (ok.status_code, ok.headers["location"])
    assert f"Event {event_id} is queued again." in after.text


async def test_nothing_secret_is_rendered(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Neither the admin token, the webhook secret nor the amoCRM token appear anywhere."""
    fake = demo_fake(2)
    async with api(make_settings(admin_token=ADMIN), fake) as client:
        await seed_through_pipeline(client, database, fake, SECRET_PATH)
        login_page = await client.get("/login")
        await log_in(client)
        bodies = [login_page.text] + [
            (await client.get(p, headers=AUTH)).text
            for p in [
                "/",
                "/?lang=ru&q=RP-1001",
                "/status/live",
                "/api/deals",
                "/api/events",
                "/metrics",
                "/openapi.json",
                "/health",
            ]
        ]
        cookies = " ".join(f"{k}={v}" for k, v in client.cookies.items())

    for secret in (ADMIN, "s3cret-path-0123456789", DEFAULT_TOKEN):
        assert [] == [i for i, body in enumerate(bodies) if secret in body]
        assert secret not in cookies


@pytest.mark.parametrize(
    ("query", "accept", "title"),
    [
        ("", "ru-RU,ru;q=0.9,en;q=0.8", "amosync: состояние"),
        ("", "de-DE,en;q=0.5,ru;q=0.4", "amosync status"),
        ("?lang=ru", "en", "amosync: состояние"),
        ("?lang=en", "ru", "amosync status"),
    ],
)
async def test_language_from_query_or_accept_language(
    make_settings: Callable[..., Settings], query: str, accept: str, title: str
) -> None:
    """`?lang=` wins over Accept-Language, which picks the best of Russian and English."""
    async with api(make_settings(admin_token=None), demo_fake(0)) as client:
        page = await client.get(f"/{query}", headers={"Accept-Language": accept})

    assert f"<title>{title}</title>" in page.text


async def test_loopback_api_refuses_cross_site_posts_and_huge_forms(
    make_settings: Callable[..., Settings], database: Database
) -> None:
    """Without a token, a page on another site cannot make the browser retry events through
    the API, and an oversized form is read no further than the limit (then refused)."""
    async with api(make_settings(admin_token=None), demo_fake(0)) as client:
        cross = await client.post("/api/events/1/retry", headers={"Sec-Fetch-Site": "cross-site"})
        same = await client.post("/api/events/1/retry", headers={"Sec-Fetch-Site": "same-origin"})
        # The page's own CSRF pair (issue #19: a planted equal pair no longer passes).
        client.cookies.set("amosync_csrf", "k" * 43)
        form = b"csrf_token=" + (await own_csrf(database, "k" * 43)).encode()
        small = await client.post("/status/events/1/retry", content=form + b"&back=/%5Cevil.com")
        huge = await client.post("/status/events/1/retry", content=form + b"&pad=" + b"a" * 20_000)

    assert (403, "cross-site request refused") == (cross.status_code, cross.json()["error"])
    assert 404 == same.status_code
    assert (303, "/?not_retried=1") == (small.status_code, small.headers["location"])
    assert (403, "missing CSRF token: reload the page and try again") == (
        huge.status_code,
        huge.text,
    )
