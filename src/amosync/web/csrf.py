"""CSRF protection for the page's forms (login, retry, logout).

The browser gets a random id in a `SameSite=Strict`, HttpOnly cookie; the form field holds
an HMAC of that id and of the session id (when logged in) under a server key (derived from
the admin token, or a random key in the database without one: web/access.py). A POST must
carry a field that matches its own cookie and session. Another site can make the browser
send the cookie but can neither read it nor compute the field; a cookie it manages to plant
(say, from a sibling subdomain) is useless without the key, and a token taken from one
session does not work in another. Requests the browser marks `Sec-Fetch-Site: cross-site`
are refused outright, which also shields the loopback-only API (no token to steal there)
from a page on another site posting to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import Response

from amosync.web.access import SESSION_COOKIE, AccessPolicy

CSRF_COOKIE = "amosync_csrf"
CSRF_FIELD = "csrf_token"


def browser_id(conn: HTTPConnection) -> str:
    """The browser's current CSRF cookie, or a new one (set it with `remember_csrf`)."""
    current = conn.cookies.get(CSRF_COOKIE, "")
    return current if 32 <= len(current) <= 128 else secrets.token_urlsafe(32)


async def csrf_token(access: AccessPolicy, conn: HTTPConnection, browser: str) -> str:
    """The form field for this browser id and the request's session (if any)."""
    session = access.session_id(conn.cookies.get(SESSION_COOKIE, "")) or ""
    message = f"csrf\0{browser}\0{session}".encode()
    return hmac.new(await access.csrf_key(), message, hashlib.sha256).hexdigest()


def remember_csrf(conn: HTTPConnection, response: Response, browser: str) -> None:
    if conn.cookies.get(CSRF_COOKIE) != browser:
        response.set_cookie(
            CSRF_COOKIE,
            browser,
            httponly=True,
            samesite="strict",
            secure=conn.url.scheme == "https",
            path="/",
        )


def cross_site(conn: HTTPConnection) -> bool:
    return conn.headers.get("sec-fetch-site", "") == "cross-site"


async def csrf_problem(
    access: AccessPolicy, conn: HTTPConnection, submitted: str | None
) -> str | None:
    """Why this state-changing request is refused, or None when it is acceptable."""
    if cross_site(conn):
        return "cross-site request refused"
    cookie = conn.cookies.get(CSRF_COOKIE, "")
    if not cookie or not submitted:
        return "missing CSRF token: reload the page and try again"
    expected = await csrf_token(access, conn, cookie)
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        return "CSRF token mismatch: reload the page and try again"
    return None
