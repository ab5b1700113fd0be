"""Who may see the status page, the read API and the metrics.

With `AMOSYNC_ADMIN_TOKEN` set:
- the API and `/metrics` want `Authorization: Bearer <token>`;
- the page wants a session cookie (got by logging in with the token) or HTTP basic auth
  with the token as password (any user name), which suits scripts and reverse proxies.
Without it, all of them are served to loopback clients only, and say so. Webhook endpoints
are not covered here: they keep their own secret.

The session cookie is `<expiry>.<hmac>` keyed by a hash of the token, so changing the token
logs everyone out and nothing secret is stored in the browser. All comparisons of secrets
are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from amosync.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "amosync_session"
SESSION_SECONDS = 12 * 3600
LOOPBACK_ONLY_REASON = (
    "no AMOSYNC_ADMIN_TOKEN is configured: the status page, read API and metrics are "
    "served to loopback clients (127.0.0.1, ::1) only"
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of an access check: allowed, or the HTTP status and reason to refuse."""

    allowed: bool
    status: int = 200
    reason: str = ""

    def refusal(self) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="amosync"'} if self.status == 401 else None
        return JSONResponse(
            {"ok": False, "error": self.reason}, status_code=self.status, headers=headers
        )


ALLOWED = Verdict(True)


def is_loopback(conn: HTTPConnection) -> bool:
    """True when the client is this machine. uvicorn replaces the peer with the address in
    `X-Forwarded-For` only for a proxy on 127.0.0.1; a local proxy that does not send it
    makes every client look local, hence the README's advice to set the token."""
    host = conn.client.host if conn.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AccessPolicy:
    def __init__(self, settings: Settings) -> None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        self._token: bytes | None = token.encode() if token else None
        # Derived, never the token itself: what signs session cookies.
        self._key = (
            hashlib.sha256(b"amosync-session\0" + self._token).digest() if self._token else None
        )

    @property
    def token_configured(self) -> bool:
        return self._token is not None

    def log_mode(self) -> None:
        """One start-up line saying how the private pages are protected."""
        if self.token_configured:
            log.info(
                "admin_access",
                extra={"event": "admin_access", "mode": "token"},
            )
        else:
            log.warning(
                "admin_access_loopback_only",
                extra={
                    "event": "admin_access_loopback_only",
                    "hint": "set AMOSYNC_ADMIN_TOKEN to reach the status page, read API and "
                    "metrics from other hosts",
                },
            )

    def token_matches(self, candidate: str) -> bool:
        if self._token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self._token)

    # -- the API and /metrics ------------------------------------------------------------

    def check_api(self, conn: HTTPConnection) -> Verdict:
        if self._token is None:
            return ALLOWED if is_loopback(conn) else Verdict(False, 403, LOOPBACK_ONLY_REASON)
        scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
        if not credentials or scheme.lower() != "bearer":
            return Verdict(
                False,
                401,
                "missing bearer token: send `Authorization: Bearer <AMOSYNC_ADMIN_TOKEN>`",
            )
        if not self.token_matches(credentials.strip()):
            return Verdict(False, 401, "invalid bearer token")
        return ALLOWED

    # -- the page ------------------------------------------------------------------------

    def check_page(self, conn: HTTPConnection) -> Verdict:
        """Session cookie, HTTP basic or bearer; loopback when no token is configured."""
        if self._token is None:
            return ALLOWED if is_loopback(conn) else Verdict(False, 403, LOOPBACK_ONLY_REASON)
        if self.session_valid(conn.cookies.get(SESSION_COOKIE, "")):
            return ALLOWED
        header = conn.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic" and self.token_matches(_basic_password(credentials)):
            return ALLOWED
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return ALLOWED
        return Verdict(False, 401, "log in with AMOSYNC_ADMIN_TOKEN")

    def new_session(self, now: float | None = None) -> str:
        if self._key is None:
            raise RuntimeError("sessions need AMOSYNC_ADMIN_TOKEN")
        expires = int((now or time.time()) + SESSION_SECONDS)
        return f"{expires}.{self._sign(str(expires))}"

    def session_valid(self, value: str, now: float | None = None) -> bool:
        if self._key is None or "." not in value:
            return False
        expires, _, signature = value.partition(".")
        if not hmac.compare_digest(signature, self._sign(expires)):
            return False
        return expires.isascii() and expires.isdigit() and int(expires) > (now or time.time())

    def _sign(self, message: str) -> str:
        if self._key is None:
            raise RuntimeError("signing needs AMOSYNC_ADMIN_TOKEN")
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()


def _basic_password(credentials: str) -> str:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]
