"""GET /: the operator's status page (server-rendered, one template, RU/EN).

`/status/live` renders only the page's live block, which the page fetches every few seconds
to refresh itself in place. Retrying a failed event is a CSRF-protected form POST that
redirects back (works without script). Nothing secret is ever put into the template's
context: no token, no webhook secret, no database URL.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from amosync.amocrm.token_info import TokenExpiry, token_expiry
from amosync.core.humanize import age, when
from amosync.core.nul import NUL
from amosync.inbox.admin import list_events, retry_events
from amosync.settings import Settings
from amosync.stats import collect_stats
from amosync.totals import PAGE_TOTALS_MAX_AGE
from amosync.web.access import SESSION_COOKIE, SESSION_SECONDS, AccessPolicy
from amosync.web.activity import CHART_HOURS, chart_svg, per_minute
from amosync.web.csrf import CSRF_FIELD, csrf_problem, csrf_token, remember_csrf
from amosync.web.health import run_checks
from amosync.web.i18n import LANG_COOKIE, LANGS, STRINGS, pick_language
from amosync.web.reads import MAX_ID, deal_by_id, deals_by_rentprog_id
from amosync.web.shared_result import SharedResult
from amosync.worker.subscription import subscription_health, subscription_state

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10
LIVE_MAX_AGE = 1.0  # seconds the page's database figures are shared between requests
EVENTS_SHOWN = 30
MAX_FORM_BYTES = 16_384
FAILED_LOGIN_DELAY = 0.5  # slows guessing a little; the token itself must be long

_templates = Environment(
    loader=PackageLoader("amosync.web", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)


@dataclass(frozen=True)
class SubscriptionView:
    ok: bool
    detail: str


class StatusPage:
    def __init__(self, settings: Settings, engine: AsyncEngine, access: AccessPolicy) -> None:
        self._settings = settings
        self._engine = engine
        self._access = access
        # The page's database figures, read at most once a second however many browsers
        # refresh it (web/shared_result.py).
        self._shared: SharedResult[dict[str, Any]] = SharedResult(LIVE_MAX_AGE)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/status/live", self.live, methods=["GET"]),
            Route("/status/events/{event_id}/retry", self.retry, methods=["POST"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
        ]

    # -- pages ---------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        verdict = self._access.check_page(request)
        if verdict.status == 401:
            return RedirectResponse(f"/login?{urlencode({'lang': pick_language(request)})}", 303)
        if not verdict.allowed:
            return verdict.refusal()
        context = await self._context(request)
        q = request.query_params.get("q", "").strip()[:255]
        context.update(q=q, found=await self._search(q) if q else [], flash=_flash(request))
        html = _templates.get_template("status.html").render(context)
        response = self._render(request, html, context["nonce"])
        remember_csrf(request, response, context["csrf"])
        return response

    async def live(self, request: Request) -> Response:
        verdict = self._access.check_page(request)
        if not verdict.allowed:
            return verdict.refusal()
        template = _templates.get_template("status.html")
        context = await self._context(request)
        html = "".join(template.blocks["live"](template.new_context(context)))
        response = self._render(request, html, context["nonce"])
        remember_csrf(request, response, context["csrf"])
        return response

    async def retry(self, request: Request) -> Response:
        verdict = self._access.check_page(request)
        if not verdict.allowed:
            return verdict.refusal()
        form = await _form(request)
        problem = csrf_problem(request, form.get(CSRF_FIELD))
        if problem is not None:
            return HTMLResponse(problem, status_code=403)
        raw = request.path_params["event_id"]
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
            return HTMLResponse("event id must be a positive integer", status_code=400)
        retried = await retry_events(self._engine, [int(raw)])
        self._shared.forget()  # the page we redirect to shows the retry
        log.info(
            "event_retry_requested",
            extra={"event": "event_retry_requested", "event_id": int(raw), "ok": bool(retried)},
        )
        back = form.get("back", "/")
        if back != "/" and not back.startswith("/?"):
            back = "/"  # only the status page itself: never an open redirect
        joiner = "&" if "?" in back else "?"
        flag = "retried" if retried else "not_retried"
        return RedirectResponse(f"{back}{joiner}{flag}={int(raw)}", status_code=303)

    async def login_form(self, request: Request, *, failed: bool = False) -> Response:
        lang = pick_language(request)
        if not self._access.token_configured:
            return RedirectResponse(f"/?{urlencode({'lang': lang})}", 303)
        csrf, nonce = csrf_token(request), secrets.token_urlsafe(16)
        html = _templates.get_template("status.html").render(
            view="login",
            lang=lang,
            langs=LANGS,
            t=STRINGS[lang],
            csrf=csrf,
            nonce=nonce,
            login_failed=failed,
        )
        response = self._render(request, html, nonce, status=401 if failed else 200)
        remember_csrf(request, response, csrf)
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        problem = csrf_problem(request, form.get(CSRF_FIELD))
        if problem is not None:
            return HTMLResponse(problem, status_code=403)
        if not self._access.token_matches(form.get("token", "")):
            log.warning("admin_login_failed", extra={"event": "admin_login_failed"})
            await asyncio.sleep(FAILED_LOGIN_DELAY)
            return await self.login_form(request, failed=True)
        lang = form.get("lang", "")
        response = RedirectResponse(f"/?{urlencode({'lang': lang})}" if lang in LANGS else "/", 303)
        response.set_cookie(
            SESSION_COOKIE,
            self._access.new_session(),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(self, request: Request) -> Response:
        form = await _form(request)
        problem = csrf_problem(request, form.get(CSRF_FIELD))
        if problem is not None:
            return HTMLResponse(problem, status_code=403)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- building blocks -----------------------------------------------------------------

    def _render(self, request: Request, html: str, nonce: str, status: int = 200) -> Response:
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"
        )
        asked = request.query_params.get("lang")
        if asked in LANGS and request.cookies.get(LANG_COOKIE) != asked:
            response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="lax")
        return response

    async def _context(self, request: Request) -> dict[str, Any]:
        lang = pick_language(request)
        t = STRINGS[lang]
        events_filter = "failed" if request.query_params.get("events") == "failed" else ""
        data = await self._shared.get(events_filter, lambda: self._read(events_filter))
        activity, token = data["activity"], data["token"]
        csrf = csrf_token(request)
        params = {
            k: v for k, v in request.query_params.items() if k in ("lang", "events", "q", "refresh")
        }

        def url(**changes: str | None) -> str:
            merged = {**params, **changes}
            query = urlencode({k: v for k, v in merged.items() if v})
            return f"/?{query}" if query else "/"

        return {
            "view": "status",
            "lang": lang,
            "langs": LANGS,
            "t": t,
            "url": url,
            "when": when,
            "age": age,
            "now": datetime.now(UTC),
            "nonce": secrets.token_urlsafe(16),
            "csrf": csrf,
            "token_mode": self._access.token_configured,
            "refresh_seconds": _refresh_seconds(request),
            **data,  # checks, token, token_note, subscription, stats, activity, events
            "token_warn": token is not None and token.needs_warning(self._settings),
            "budget": self._settings.api_budget_per_hour,
            "rate": f"{self._settings.api_rate_limit:g}",
            "chart_hours": CHART_HOURS,
            "chart": Markup(  # noqa: S704 - built from numbers and our own label strings
                chart_svg(activity, {"chart_title": t["chart_title"].format(hours=CHART_HOURS)})
            ),
            "events_filter": events_filter,
        }

    async def _read(self, events_filter: str) -> dict[str, Any]:
        """What the page shows from the database; shared by the requests of one second."""
        token, token_note = await self._token()
        return {
            # Token and subscription get their own rows, shown even when not applicable.
            "checks": {
                name: check
                for name, check in (await run_checks(self._settings, self._engine)).items()
                if name not in ("amocrm_token_expiry", "webhook_subscription")
            },
            "token": token,
            "token_note": token_note,
            "subscription": await self._subscription(),
            "stats": await collect_stats(self._engine, totals_max_age=PAGE_TOTALS_MAX_AGE),
            "activity": await per_minute(self._engine, CHART_HOURS),
            "events": await list_events(
                self._engine, status=events_filter or None, limit=EVENTS_SHOWN
            ),
        }

    async def _token(self) -> tuple[TokenExpiry | None, str | None]:
        try:
            return await token_expiry(self._settings, self._engine), None
        except SQLAlchemyError as exc:
            return None, f"unreadable: {str(exc).splitlines()[0][:120]}"

    async def _subscription(self) -> SubscriptionView | None:
        """The webhook subscription as the worker's hourly check last stored it; None (shown
        as unknown) without AMOSYNC_PUBLIC_URL and a webhook secret to check for."""
        try:
            health = subscription_health(self._settings, await subscription_state(self._engine))
        except SQLAlchemyError as exc:
            return SubscriptionView(False, f"unreadable: {str(exc).splitlines()[0][:120]}")
        return None if health is None else SubscriptionView(*health)

    async def _search(self, q: str) -> list[dict[str, Any]]:
        """A deal by amoCRM id, and every deal whose RentProg ID is exactly `q`."""
        found: list[dict[str, Any]] = []
        if NUL in q:  # matches nothing stored (core/nul.py), and PostgreSQL refuses it
            return found
        if q.isascii() and q.isdigit():
            deal = await deal_by_id(self._engine, int(q))
            if deal is not None:
                found.append(deal)
        seen = {d["id"] for d in found}
        found += [d for d in await deals_by_rentprog_id(self._engine, q, 20) if d["id"] not in seen]
        return found


def _refresh_seconds(request: Request) -> int:
    """`?refresh=N` (1 to 300 seconds) for a wall screen or a test; 10 otherwise."""
    raw = request.query_params.get("refresh", "")
    return min(max(int(raw), 1), 300) if raw.isascii() and raw.isdigit() else REFRESH_SECONDS


def _flash(request: Request) -> str | None:
    t = STRINGS[pick_language(request)]
    for key in ("retried", "not_retried"):
        value = request.query_params.get(key, "")
        if value.isascii() and value.isdigit():
            return t[key].format(id=int(value))
    return None


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (first value of each field); oversized or odd bodies are empty."""
    body = b""
    async for chunk in request.stream():  # stop reading at the limit, not after it
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in fields.items()}
