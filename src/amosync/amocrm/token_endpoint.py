"""amoCRM's OAuth token endpoint: `POST {base}/oauth2/access_token` with a JSON body.

A refused grant (400/401 with a `hint` such as "Invalid refresh token") raises
`GrantRefused`, a `ReauthRequired`: the worker pauses with events pending and the message
says how to re-authorise. A lost answer (timeout, connection error, 5xx) is retried with
the same refresh token, which amoCRM keeps valid until the new pair is first used.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from amosync import __version__
from amosync.amocrm.calls import CallRecorder
from amosync.amocrm.jwt_claims import token_expires_at
from amosync.amocrm.token_store import REAUTH_HOWTO, TokenGrant
from amosync.core.backoff import retry_delay
from amosync.errors import IPBlocked, ReauthRequired, RetryLater
from amosync.l10n.catalog import N_

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/access_token"  # noqa: S105 - a URL path, not a secret
GRANT_TRIES = 3  # per refresh: the first try and two retries with the same refresh token
# Seconds per try: 3 tries of 4 s plus backoff (about 13 s) end well inside the refresh
# lease (token_store.LEASE_SECONDS), so other processes wait for this refresh rather than
# start a second one.
GRANT_TIMEOUT = 4.0
DEFAULT_ACCESS_LIFETIME = 86400  # amoCRM access tokens live 24 h when `expires_in` is missing


class GrantRefused(ReauthRequired):
    """amoCRM's token endpoint refused the code or refresh token (400/401)."""

    def __init__(self, message: str, *, status: int, hint: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.hint = hint


class TokenEndpoint:
    """The `/oauth2/access_token` calls of one integration on one account."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        recorder: CallRecorder | None = None,
        backoff_base: float = 0.5,
    ) -> None:
        self._base_url = base_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._timeout = timeout
        self._transport = transport
        self._recorder = recorder
        self._backoff_base = backoff_base

    async def exchange_code(self, code: str) -> TokenGrant:
        """Trade an authorization code (valid 20 minutes, single use) for a token pair.

        Not retried: a code is single-use, so a second try after a lost answer would only
        report it revoked.
        """
        return await self._grant({"grant_type": "authorization_code", "code": code}, tries=1)

    async def refresh(self, refresh_token: str) -> TokenGrant:
        """A new pair for a refresh token; retried with the same token when the answer is lost."""
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return await self._grant(body, tries=GRANT_TRIES)

    async def _grant(self, grant: dict[str, str], *, tries: int) -> TokenGrant:
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "redirect_uri": self._redirect_uri,
            **grant,
        }
        kind = grant["grant_type"]
        async with httpx.AsyncClient(
            base_url=self._base_url,
            timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
            transport=self._transport,
            headers={"User-Agent": f"amosync/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        ) as http:
            attempt = 0
            while True:
                attempt += 1
                requested = datetime.now(UTC)
                answer = await self._post(http, body)
                if isinstance(answer, httpx.Response) and answer.status_code < 300:
                    return _parse_grant(answer, requested)
                if isinstance(answer, httpx.Response) and answer.status_code in (400, 401):
                    raise _refused(kind, answer)
                if isinstance(answer, httpx.Response) and answer.status_code == 403:
                    # amoCRM's 403 is an IP block, not a verdict on the token: pause, keep it.
                    raise IPBlocked("amoCRM token endpoint answered 403: this IP is blocked")
                reason = (
                    f"{type(answer).__name__}"
                    if isinstance(answer, httpx.TransportError)
                    else f"HTTP {answer.status_code}"
                )
                log.warning(
                    "oauth_grant_retry",
                    extra={"event": "oauth_grant_retry", "grant": kind, "reason": reason},
                )
                if attempt >= tries:
                    raise RetryLater(f"amoCRM token endpoint: no usable answer ({reason})")
                await asyncio.sleep(retry_delay(attempt, base=self._backoff_base, cap=10))

    async def _post(
        self, http: httpx.AsyncClient, body: dict[str, str]
    ) -> httpx.Response | httpx.TransportError:
        started = time.monotonic()
        try:
            response = await http.post(TOKEN_PATH, content=orjson.dumps(body), headers=_JSON)
        except httpx.TransportError as exc:
            await self._record(0, started)
            return exc
        await self._record(response.status_code, started)
        return response

    async def _record(self, status: int, started: float) -> None:
        # Written at once: grants run outside any transaction (token_store.py), so the log
        # row's own short transaction waits for nothing of ours.
        if self._recorder is not None:
            ms = int((time.monotonic() - started) * 1000)
            await self._recorder.record("POST", TOKEN_PATH, status, ms)


_JSON = {"Content-Type": "application/json"}


def _parse_grant(response: httpx.Response, requested: datetime) -> TokenGrant:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise RetryLater("amoCRM token endpoint: answer is not JSON") from None
    access = body.get("access_token") if isinstance(body, dict) else None
    refresh = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
        raise RetryLater("amoCRM token endpoint: answer has no access_token/refresh_token")
    expires_at = token_expires_at(access)
    if expires_at is None:
        expires_in = body.get("expires_in")
        seconds = expires_in if isinstance(expires_in, int) else DEFAULT_ACCESS_LIFETIME
        # Counted from when we asked, so clock skew and latency only make us refresh early.
        expires_at = requested + timedelta(seconds=seconds)
    return TokenGrant(access, refresh, expires_at)


# What to do, by what amoCRM's answer says is wrong (the `hint` texts amoCRM sends).
# A fix that names the wrong thing wastes an operator's 20-minute code.
FIX_CLIENT = N_(
    "check AMOSYNC_AMOCRM_CLIENT_ID and AMOSYNC_AMOCRM_CLIENT_SECRET: they must be the "
    "integration's ID and secret key (amoCRM → Settings → Integrations → Keys)"
)
FIX_REDIRECT = N_(
    "AMOSYNC_AMOCRM_REDIRECT_URI must be exactly the redirect URI in the integration's "
    "settings (scheme, host, path and trailing slash included)"
)
FIX_CODE = N_(
    "codes are single-use and expire after 20 minutes; get a new one with `amosync auth url` "
    "(or run `amosync auth login` again)"
)


def refusal_cause(status: int, texts: list[str]) -> str:
    """`client`, `redirect_uri`, `code`, `refresh_token` or `unknown`, from the answer."""
    text = " ".join(texts).lower()
    if "redirect_uri" in text or "redirect uri" in text:
        return "redirect_uri"
    if "client" in text or (status == 401 and "refresh" not in text and "code" not in text):
        return "client"  # "Client authentication failed", "Check the `client_id` parameter"
    if "authorization code" in text or "code" in text.split("`"):
        return "code"
    if "refresh token" in text or "refresh_token" in text:
        return "refresh_token"
    return "unknown"


def _refused(kind: str, response: httpx.Response) -> GrantRefused:
    hint = _problem_field(response, "hint")
    detail = hint or _problem_field(response, "detail") or _problem_field(response, "title")
    detail = detail or response.reason_phrase
    texts = [
        t
        for t in (
            hint,
            _problem_field(response, "error"),
            _problem_field(response, "message"),
            _problem_field(response, "error_description"),
        )
        if t
    ]
    cause = refusal_cause(response.status_code, texts)
    # Templates of the catalogue: the CLI and the `auth login` tab translate them (l10n/phrases).
    if cause == "client":
        said = N_("amoCRM refused the integration's credentials ({n} {detail}): {fix}")
        fix = FIX_CLIENT
    elif cause == "redirect_uri":
        said, fix = N_("amoCRM refused the redirect URI ({n} {detail}): {fix}"), FIX_REDIRECT
    elif kind == "refresh_token":
        said, fix = N_("amoCRM refused the OAuth refresh token ({n} {detail}): {fix}"), REAUTH_HOWTO
    elif cause == "code":
        said, fix = N_("amoCRM refused the authorization code ({n} {detail}): {fix}"), FIX_CODE
    else:
        said = N_(
            "amoCRM refused the {what} ({n} {detail}): check the client ID, secret and redirect "
            "URI settings, then get a new code with `amosync auth url`"
        )
        fix = ""
    what = N_("refresh token") if kind == "refresh_token" else N_("authorization code")
    message = said.format(n=response.status_code, detail=detail, fix=fix, what=what)
    return GrantRefused(message, status=response.status_code, hint=hint)


def _problem_field(response: httpx.Response, key: str) -> str | None:
    try:
        body: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    value = body.get(key) if isinstance(body, dict) else None
    return value[:200] if isinstance(value, str) and value else None
