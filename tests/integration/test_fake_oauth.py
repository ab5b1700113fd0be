"""The fake token endpoint follows amoCRM's rules: OAuth tests rely on it."""

from __future__ import annotations

from typing import Any

import httpx

from amosync.amocrm.jwt_claims import read_claims
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REDIRECT_URI

BASE = "https://testaccount.amocrm.ru"


def body(**grant: str) -> dict[str, str]:
    return {
        "client_id": FAKE_CLIENT_ID,
        "client_secret": FAKE_CLIENT_SECRET,
        "redirect_uri": FAKE_REDIRECT_URI,
        **grant,
    }


async def post(http: httpx.AsyncClient, **grant: str) -> tuple[int, Any]:
    response = await http.post("/oauth2/access_token", json=body(**grant))
    return response.status_code, response.json()


async def api_status(http: httpx.AsyncClient, access_token: str) -> int:
    response = await http.get(
        "/api/v4/account", headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code


def client(fake: FakeAmoState) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake))
    return httpx.AsyncClient(base_url=BASE, transport=transport)


async def test_code_is_single_use_and_gives_a_jwt_pair() -> None:
    """A code gives a Bearer pair whose access token is a JWT with exp; reuse is "revoked"."""
    fake = FakeAmoState(rate_limit_rps=None)
    code = fake.oauth.issue_code()
    async with client(fake) as http:
        first = await post(http, grant_type="authorization_code", code=code)
        again = await post(http, grant_type="authorization_code", code=code)
        works = await api_status(http, first[1]["access_token"])

    claims = read_claims(first[1]["access_token"])
    assert (200, "Bearer", 86400) == (first[0], first[1]["token_type"], first[1]["expires_in"])
    assert claims is not None
    assert (True, "api-b.amocrm.ru") == (claims.expires_at is not None, claims.api_domain)
    assert (400, "Authorization code has been revoked") == (again[0], again[1]["hint"])
    assert 200 == works


async def test_expired_and_unknown_codes() -> None:
    """An old code is "expired", a made-up one cannot be decrypted; wrong client id is named."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.oauth.code_lifetime = -1
    old = fake.oauth.issue_code()
    async with client(fake) as http:
        expired = await post(http, grant_type="authorization_code", code=old)
        unknown = await post(http, grant_type="authorization_code", code="nonsense")
        response = await http.post(
            "/oauth2/access_token", json={**body(grant_type="refresh_token"), "client_id": "x"}
        )

    assert [
        (400, "Authorization code has expired"),
        (400, "Cannot decrypt the authorization code"),
        (400, "Check the `client_id` parameter"),
    ] == [
        (expired[0], expired[1]["hint"]),
        (unknown[0], unknown[1]["hint"]),
        (response.status_code, response.json()["hint"]),
    ]


async def test_old_refresh_token_works_until_the_new_pair_is_used() -> None:
    """Rotation with grace: R0 still refreshes after R0→R1 until A1 is used, then dies."""
    fake = FakeAmoState(rate_limit_rps=None)
    async with client(fake) as http:
        _, pair0 = await post(http, grant_type="authorization_code", code=fake.oauth.issue_code())
        r0 = pair0["refresh_token"]
        s1, pair1 = await post(http, grant_type="refresh_token", refresh_token=r0)
        s2, pair2 = await post(http, grant_type="refresh_token", refresh_token=r0)  # lost answer
        used = await api_status(http, pair2["access_token"])
        s3, dead = await post(http, grant_type="refresh_token", refresh_token=r0)

    assert (200, 200, 200) == (s1, s2, used)
    assert pair1["refresh_token"] != pair2["refresh_token"]
    assert (400, "Invalid refresh token") == (s3, dead["hint"])
    assert 2 == fake.oauth.refreshes


async def test_using_the_new_refresh_token_ends_the_old_ones_grace() -> None:
    """Refreshing with R1 kills R0 as well."""
    fake = FakeAmoState(rate_limit_rps=None)
    async with client(fake) as http:
        _, pair0 = await post(http, grant_type="authorization_code", code=fake.oauth.issue_code())
        r0 = pair0["refresh_token"]
        _, pair1 = await post(http, grant_type="refresh_token", refresh_token=r0)
        s2, _ = await post(http, grant_type="refresh_token", refresh_token=pair1["refresh_token"])

    assert (200, False) == (s2, fake.oauth.refresh_alive(r0))


async def test_expired_access_token_gets_401() -> None:
    """The API refuses an access token past its `exp`, even though it is still known."""
    fake = FakeAmoState(rate_limit_rps=None)
    fake.oauth.access_lifetime = -10
    async with client(fake) as http:
        _, pair = await post(http, grant_type="authorization_code", code=fake.oauth.issue_code())
        status = await api_status(http, pair["access_token"])

    assert 401 == status
