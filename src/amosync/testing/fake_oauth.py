"""The fake amoCRM token endpoint, `POST /oauth2/access_token`, with amoCRM's rules:

- authorization codes are single-use and expire (20 minutes): a reused code gets the hint
  "Authorization code has been revoked", an expired one "Authorization code has expired";
- access tokens are JWT-shaped with an `exp` claim (24 h); the API accepts one while it is
  in `FakeAmoState.tokens` and not expired;
- refresh tokens rotate on every refresh, and the old refresh token keeps working until the
  new access or refresh token is first used, then dies ("Invalid refresh token");
- errors are problem+json with a `hint`, as amoCRM's token endpoint answers.

`refreshes` counts successful refresh grants, so tests can assert "exactly one".
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from amosync.testing.fake_errors import PROBLEM_JSON, json_response
from amosync.testing.fake_fields import DEFAULT_ACCOUNT_ID, DEFAULT_USER_ID

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

FAKE_CLIENT_ID = "00000000-0000-4000-8000-00000000c11d"
FAKE_CLIENT_SECRET = "fake-client-secret"  # noqa: S105 - a well-known test value
FAKE_REDIRECT_URI = "https://sync.example.com/oauth/callback"
REFRESH_LIFETIME = 90 * 86400.0


@dataclass
class _RefreshToken:
    expires_at: float
    parent: str | None  # the refresh token this one was issued for; dies on first use of us
    alive: bool = True


@dataclass
class _Code:
    expires_at: float
    used: bool = False


@dataclass(kw_only=True)
class FakeOAuth:
    """The integration's OAuth state. Plain Python, thread-safe; every knob can change."""

    client_id: str = FAKE_CLIENT_ID
    client_secret: str = FAKE_CLIENT_SECRET
    redirect_uri: str = FAKE_REDIRECT_URI
    access_lifetime: int = 86400
    code_lifetime: float = 1200.0
    # amoCRM answers a dead refresh token with 400, sometimes 401.
    refused_status: int = 400
    # The next `lose_answers` grants are made, then answered only after `lose_seconds`:
    # a client with a shorter timeout never sees the new pair (a lost response).
    lose_answers: int = 0
    lose_seconds: float = 3.0
    # Every token answer (granted or refused) is sent this many seconds late: a slow endpoint.
    answer_delay: float = 0.0
    now: Callable[[], float] = time.time
    refreshes: int = 0
    refresh_requests: int = 0
    code_exchanges: int = 0
    _codes: dict[str, _Code] = field(default_factory=dict, repr=False)
    _refresh: dict[str, _RefreshToken] = field(default_factory=dict, repr=False)
    _access: dict[str, tuple[float, str | None]] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- what a test does ----------------------------------------------------------------

    def issue_code(self) -> str:
        """The code amoCRM would append to the redirect URI after the user allows access."""
        code = "def50200" + secrets.token_hex(24)
        with self._lock:
            self._codes[code] = _Code(self.now() + self.code_lifetime)
        return code

    def issue_pair(self) -> tuple[str, str]:
        """An access and refresh token as a fresh consent would give (no code needed)."""
        with self._lock:
            return self._issue(parent=None)

    def issue_long_lived(self, days: float = 365.0) -> str:
        """A private integration's long-lived token: a JWT whose `exp` is `days` ahead, no
        refresh token; the API refuses it (401) once `exp` has passed. Add it to
        `FakeAmoState.tokens` to have the API accept it."""
        now = self.now()
        expires = int(now + days * 86400)
        with self._lock:
            token = _jwt(self._claims(now, expires))
            self._access[token] = (float(expires), None)
        return token

    def revoke(self) -> None:
        """The integration was uninstalled: every refresh token and code dies."""
        with self._lock:
            for token in self._refresh.values():
                token.alive = False
            self._codes.clear()

    def refresh_alive(self, refresh_token: str) -> bool:
        with self._lock:
            token = self._refresh.get(refresh_token)
            return token is not None and token.alive and token.expires_at > self.now()

    # -- used by the fake app ------------------------------------------------------------

    def access_expired(self, access_token: str) -> bool:
        """True for an access token we issued whose `exp` has passed (others: False)."""
        with self._lock:
            known = self._access.get(access_token)
            return known is not None and known[0] <= self.now()

    def access_used(self, access_token: str) -> None:
        """The API accepted this token: the refresh token it was issued for dies now."""
        with self._lock:
            known = self._access.get(access_token)
            if known is not None and known[1] is not None:
                self._kill(known[1])
                self._access[access_token] = (known[0], None)

    def grant(self, body: object) -> tuple[int, dict[str, Any]]:
        """Answer one token request: (200, token body) or (4xx, problem+json body)."""
        if not isinstance(body, dict):
            return _refused(400, "Check the `grant_type` parameter")
        for name in ("client_id", "client_secret", "grant_type", "redirect_uri"):
            if not isinstance(body.get(name), str) or not body[name]:
                return _refused(400, f"Check the `{name}` parameter")
        if body["client_id"] != self.client_id:
            return _refused(400, "Check the `client_id` parameter")
        if body["client_secret"] != self.client_secret:
            return _refused(401, "Client authentication failed")
        if body["redirect_uri"] != self.redirect_uri:
            return _refused(400, "Check the `redirect_uri` parameter")
        with self._lock:
            if body["grant_type"] == "authorization_code":
                return self._code_grant(body.get("code"))
            if body["grant_type"] == "refresh_token":
                return self._refresh_grant(body.get("refresh_token"))
        return _refused(400, "Check the `grant_type` parameter")

    # -- internals (callers hold the lock) -----------------------------------------------

    def _code_grant(self, code: object) -> tuple[int, dict[str, Any]]:
        if not isinstance(code, str) or code not in self._codes:
            return _refused(400, "Cannot decrypt the authorization code")
        known = self._codes[code]
        if known.used:
            return _refused(400, "Authorization code has been revoked")
        if known.expires_at <= self.now():
            return _refused(400, "Authorization code has expired")
        known.used = True
        self.code_exchanges += 1
        return 200, self._token_body(*self._issue(parent=None))

    def _refresh_grant(self, refresh_token: object) -> tuple[int, dict[str, Any]]:
        self.refresh_requests += 1
        if not isinstance(refresh_token, str) or not self.refresh_alive(refresh_token):
            return _refused(self.refused_status, "Invalid refresh token")
        known = self._refresh[refresh_token]
        if known.parent is not None:
            self._kill(known.parent)  # using the new refresh token ends the old one's grace
            known.parent = None
        self.refreshes += 1
        return 200, self._token_body(*self._issue(parent=refresh_token))

    def _issue(self, parent: str | None) -> tuple[str, str]:
        now = self.now()
        access = _jwt(self._claims(now, int(now) + self.access_lifetime))
        refresh = "def50200" + secrets.token_hex(32)
        self._access[access] = (float(int(now) + self.access_lifetime), parent)
        self._refresh[refresh] = _RefreshToken(now + REFRESH_LIFETIME, parent)
        return access, refresh

    def _claims(self, now: float, expires: int) -> dict[str, Any]:
        return {
            "aud": self.client_id,
            "jti": str(uuid.uuid4()),
            "iat": int(now),
            "nbf": int(now),
            "exp": expires,
            "sub": str(DEFAULT_USER_ID),
            "account_id": DEFAULT_ACCOUNT_ID,
            "base_domain": "amocrm.ru",
            "api_domain": "api-b.amocrm.ru",
            "scopes": ["crm", "notifications"],
        }

    def _token_body(self, access: str, refresh: str) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "expires_in": self.access_lifetime,
            "access_token": access,
            "refresh_token": refresh,
        }

    def _kill(self, refresh_token: str) -> None:
        token = self._refresh.get(refresh_token)
        if token is not None:
            token.alive = False

    def take_lost_answer(self) -> bool:
        with self._lock:
            if self.lose_answers <= 0:
                return False
            self.lose_answers -= 1
            return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(claims: dict[str, Any]) -> str:
    header = _b64(orjson.dumps({"typ": "JWT", "alg": "RS256"}))
    return f"{header}.{_b64(orjson.dumps(claims))}.{_b64(secrets.token_bytes(32))}"


def _refused(status: int, hint: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "hint": hint,
        "title": "Некорректный запрос",
        "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
        "status": status,
        "detail": "В запросе отсутствует ряд параметров или параметры невалидны",
    }


def token_endpoint(state: FakeAmoState) -> Callable[[Request], Any]:
    """The route handler for `POST /oauth2/access_token`."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        oauth = state.oauth
        status, answer = oauth.grant(body)
        if oauth.answer_delay > 0:
            await asyncio.sleep(oauth.answer_delay)
        if status != 200:
            return json_response(answer, status, PROBLEM_JSON)
        with state.lock:
            state.tokens.add(answer["access_token"])
        if oauth.take_lost_answer():
            await asyncio.sleep(oauth.lose_seconds)
        return json_response(answer, 200, "application/json")

    return endpoint
