"""Who may see the status page, the read API and the metrics.

With `AMOSYNC_ADMIN_TOKEN` set:
- the API and `/metrics` want `Authorization: Bearer <token>`;
- the page wants a session cookie (got by logging in with the token) or HTTP basic auth
  with the token as password (any user name), which suits scripts and reverse proxies.
Without it, all of them are served to loopback clients only (127.0.0.1 and ::1, reached by
a loopback `Host` and not through a proxy), and say so. Webhook endpoints are not covered
here: they keep their own secret.

The session cookie is `<id>.<expiry>.<hmac>` keyed by a hash of the token, so changing the
token logs everyone out and nothing secret is stored in the browser; logging out revokes
the id in the database (web/sessions.py), so a copied cookie stops working on every
process. Failed token attempts are counted per client address and throttled
(web/throttle.py). All comparisons of secrets are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from amosync.db.database import Database
from amosync.settings import Settings
from amosync.web.sessions import revoke_session, session_revoked, shared_signing_key
from amosync.web.throttle import FailureThrottle

log = logging.getLogger(__name__)

SESSION_COOKIE = "amosync_session"
SESSION_SECONDS = 12 * 3600
# "::ffff:127.0.0.1" is 127.0.0.1 as a dual-stack (::) listener reports it.
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# A request that came through a proxy did not start on this machine, whatever the peer is.
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
LOOPBACK_ONLY_REASON = (
    "no AMOSYNC_ADMIN_TOKEN is configured: the status page, read API and metrics are "
    "served to loopback clients (127.0.0.1, ::1) only"
)
PROXIED_REASON = (
    "no AMOSYNC_ADMIN_TOKEN is configured: requests through a proxy (X-Forwarded-For, "
    "Forwarded, X-Real-IP) are refused; set the token to reach these pages through a proxy"
)
HOST_REASON = (
    "no AMOSYNC_ADMIN_TOKEN is configured: only Host localhost, 127.0.0.1 or [::1] is "
    "served (another name pointing at 127.0.0.1 is DNS rebinding)"
)
DATABASE_REASON = "database unavailable: cannot check the session; try again shortly"


@dataclass(frozen=True)
class Verdict:
    """The outcome of an access check: allowed, or the HTTP status and reason to refuse."""

    allowed: bool
    status: int = 200
    reason: str = ""
    retry_after: int | None = None

    def refusal(self) -> Response:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="amosync"'
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return JSONResponse(
            {"ok": False, "error": self.reason}, status_code=self.status, headers=headers
        )


ALLOWED = Verdict(True)


def client_address(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else ""


def is_loopback(conn: HTTPConnection) -> bool:
    """True when the client is this machine: 127.0.0.1 or ::1 (not the rest of 127/8, which
    a proxy's X-Forwarded-For could name), and the request did not come through a proxy."""
    if client_address(conn) not in LOOPBACK_ADDRESSES:
        return False
    return not any(name in conn.headers for name in PROXY_HEADERS)


def loopback_host(conn: HTTPConnection) -> bool:
    """True when the `Host` header names this machine. A page on evil.example whose name
    resolves to 127.0.0.1 sends `Host: evil.example`: refused, so rebinding reads nothing."""
    host = conn.headers.get("host", "").strip().lower()
    if host.startswith("["):
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.partition(":")[0]
    return name in LOOPBACK_HOSTS


def loopback_verdict(conn: HTTPConnection) -> Verdict:
    """The check of loopback-only mode (no admin token)."""
    if client_address(conn) not in LOOPBACK_ADDRESSES:
        return Verdict(False, 403, LOOPBACK_ONLY_REASON)
    if not is_loopback(conn):
        return Verdict(False, 403, PROXIED_REASON)
    if not loopback_host(conn):
        return Verdict(False, 403, HOST_REASON)
    return ALLOWED


class AccessPolicy:
    def __init__(
        self, settings: Settings, db: Database, throttle: FailureThrottle | None = None
    ) -> None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        self._token: bytes | None = token.encode() if token else None
        self._db = db
        self.throttle = throttle or FailureThrottle()
        # Derived, never the token itself: what signs session cookies and CSRF tokens.
        self._key = (
            hashlib.sha256(b"amosync-session\0" + self._token).digest() if self._token else None
        )
        self._csrf_key = (
            hashlib.sha256(b"amosync-csrf\0" + self._token).digest() if self._token else None
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

    def attempt(self, conn: HTTPConnection, candidate: str, kind: str) -> Verdict:
        """Check a token the client offers, throttled per client address: 429 once it has
        failed too often, and every failure counted and logged (never the value)."""
        address = client_address(conn)
        wait = self.throttle.retry_after(address)
        if wait is not None:
            return Verdict(
                False, 429, f"too many failed attempts: try again in {wait} s", retry_after=wait
            )
        if self.token_matches(candidate):
            return ALLOWED
        self.throttle.failed(address, kind)
        return Verdict(False, 401, f"invalid {kind} token")

    # -- the API and /metrics ------------------------------------------------------------

    def check_api(self, conn: HTTPConnection) -> Verdict:
        if self._token is None:
            return loopback_verdict(conn)
        scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
        if not credentials or scheme.lower() != "bearer":
            return Verdict(
                False,
                401,
                "missing bearer token: send `Authorization: Bearer <AMOSYNC_ADMIN_TOKEN>`",
            )
        return self.attempt(conn, credentials.strip(), "bearer")

    # -- the page ------------------------------------------------------------------------

    async def check_page(self, conn: HTTPConnection) -> Verdict:
        """Session cookie, HTTP basic or bearer; loopback when no token is configured."""
        if self._token is None:
            return loopback_verdict(conn)
        session = self.session_id(conn.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            try:
                if not await session_revoked(self._db, session):
                    return ALLOWED
            except SQLAlchemyError:
                return Verdict(False, 503, DATABASE_REASON)
        header = conn.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "basic":
            return self.attempt(conn, _basic_password(credentials), "basic")
        if scheme.lower() == "bearer":
            return self.attempt(conn, credentials.strip(), "bearer")
        return Verdict(False, 401, "log in with AMOSYNC_ADMIN_TOKEN")

    def new_session(self, now: float | None = None) -> str:
        if self._key is None:
            raise RuntimeError("sessions need AMOSYNC_ADMIN_TOKEN")
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{secrets.token_urlsafe(16)}.{expires}"
        return f"{body}.{self._sign(body)}"

    def session_id(self, value: str, now: float | None = None) -> str | None:
        """The id of a well-signed, unexpired session cookie (revocation not checked)."""
        if self._key is None or value.count(".") != 2:
            return None
        session, expires, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{session}.{expires}")):
            return None
        if not (expires.isascii() and expires.isdigit()):
            return None
        return session if int(expires) > (now or time.time()) else None

    def session_valid(self, value: str, now: float | None = None) -> bool:
        """Signature and expiry only; `check_page` also asks the database."""
        return self.session_id(value, now) is not None

    async def end_session(self, conn: HTTPConnection) -> None:
        """Revoke the request's session on every process (logout)."""
        session = self.session_id(conn.cookies.get(SESSION_COOKIE, ""))
        if session is not None:
            await revoke_session(self._db, session, SESSION_SECONDS)
            log.info("admin_logout", extra={"event": "admin_logout"})

    async def csrf_key(self) -> bytes:
        """The key CSRF tokens are signed with: derived from the admin token, or without one
        a random key kept in the database (the same for every process)."""
        if self._csrf_key is None:
            self._csrf_key = await shared_signing_key(self._db)
        return self._csrf_key

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
