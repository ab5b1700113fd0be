"""CSRF protection for the page's forms (login, retry, logout).

Double-submit: a random token sits in a `SameSite=Strict`, HttpOnly cookie and in a hidden
form field; a POST must carry both, equal. Another site can make the browser send the
cookie but can neither read it nor guess it for the field. Requests the browser marks
`Sec-Fetch-Site: cross-site` are refused outright, which also shields the loopback-only
API (no token to steal there) from a page on another site posting to 127.0.0.1.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import HTTPConnection
from starlette.responses import Response

CSRF_COOKIE = "amosync_csrf"
CSRF_FIELD = "csrf_token"


def csrf_token(conn: HTTPConnection) -> str:
    """The browser's current token, or a new one (set it with `remember_csrf`)."""
    current = conn.cookies.get(CSRF_COOKIE, "")
    return current if len(current) >= 32 else secrets.token_urlsafe(32)


def remember_csrf(conn: HTTPConnection, response: Response, token: str) -> None:
    if conn.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=conn.url.scheme == "https",
            path="/",
        )


def cross_site(conn: HTTPConnection) -> bool:
    return conn.headers.get("sec-fetch-site", "") == "cross-site"


def csrf_problem(conn: HTTPConnection, submitted: str | None) -> str | None:
    """Why this state-changing request is refused, or None when it is acceptable."""
    if cross_site(conn):
        return "cross-site request refused"
    cookie = conn.cookies.get(CSRF_COOKIE, "")
    if not cookie or not submitted:
        return "missing CSRF token: reload the page and try again"
    if not hmac.compare_digest(cookie.encode(), submitted.encode()):
        return "CSRF token mismatch: reload the page and try again"
    return None
