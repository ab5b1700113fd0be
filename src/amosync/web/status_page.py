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
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from amosync.amocrm.token_info import TokenExpiry, token_expiry
from amosync.core.humanize import age
from amosync.db.database import Database
from amosync.health import FAIL, OK, Check, HealthProbe, run_checks
from amosync.health.alert import sync_alert
from amosync.inbox.activity import CHART_HOURS, per_minute
from amosync.inbox.admin import list_events, retry_events
from amosync.l10n import gettext_for
from amosync.l10n.phrases import translate
from amosync.l10n.zone import local_when, zone_named
from amosync.settings import Settings
from amosync.stats import collect_stats
from amosync.totals import PAGE_TOTALS_MAX_AGE
from amosync.web.access import SESSION_COOKIE, SESSION_SECONDS, AccessPolicy
from amosync.web.activity import chart_svg
from amosync.web.csrf import CSRF_FIELD, browser_id, csrf_problem, csrf_token, remember_csrf
from amosync.web.deal_view import deal_context, field_text
from amosync.web.health import probe_of
from amosync.web.i18n import LANG_COOKIE, LANGS, STRINGS, pick_language
from amosync.web.params import MAX_ID, bounded_int
from amosync.web.reads import search_deals
from amosync.web.reference_reads import pipelines_with_counts
from amosync.web.search import MAX_Q
from amosync.web.shared_result import SharedResult
from amosync.web.verify_view import verify_context

log = logging.getLogger(__name__)

REFRESH_SECONDS = 10
LIVE_MAX_AGE = 1.0  # seconds the page's database figures are shared between requests
EVENTS_SHOWN = 30
SEARCH_SHOWN = 20
MAX_FORM_BYTES = 16_384
FAILED_LOGIN_DELAY = 0.5  # slows guessing a little; the token itself must be long

_templates = Environment(
    loader=PackageLoader("amosync.web", "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)


class StatusPage:
    def __init__(self, settings: Settings, db: Database, access: AccessPolicy) -> None:
        self._settings = settings
        self._db = db
        self._access = access
        # The page's database figures, read at most once a second however many browsers
        # refresh it (web/shared_result.py).
        self._shared: SharedResult[dict[str, Any]] = SharedResult(LIVE_MAX_AGE)
        self._zone = zone_named(settings.timezone)  # AMOSYNC_TIMEZONE: times on the page

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
        verdict = await self._access.check_page(request)
        if verdict.status == 401:
            return RedirectResponse(f"/login?{urlencode({'lang': pick_language(request)})}", 303)
        if not verdict.allowed:
            return verdict.refusal()
        context = await self._context(request)
        q = request.query_params.get("q", "").strip()[:MAX_Q]
        context.update(q=q, found=await self._search(q) if q else [], flash=_flash(request))
        deal_id = bounded_int(request.query_params.get("deal", ""), 1, MAX_ID)
        if deal_id is not None and context["stats"] is not None:  # else the banner says why
            context.update(await deal_context(self._db, deal_id))
        t = context["t"]
        context.update(
            field_text=field_text(self._zone, (t["yes"], t["no"])),
            # Read on page load only, not by the live refresh: a GROUP BY over an index.
            pipelines=await pipelines_with_counts(self._db) if context["stats"] is not None else [],
        )
        html = _templates.get_template("status.html").render(context)
        response = self._render(request, html, context["nonce"])
        remember_csrf(request, response, context["csrf_browser"])
        return response

    async def live(self, request: Request) -> Response:
        verdict = await self._access.check_page(request)
        if not verdict.allowed:
            return verdict.refusal()
        template = _templates.get_template("status.html")
        context = await self._context(request)
        html = "".join(template.blocks["live"](template.new_context(context)))
        response = self._render(request, html, context["nonce"])
        remember_csrf(request, response, context["csrf_browser"])
        return response

    async def retry(self, request: Request) -> Response:
        verdict = await self._access.check_page(request)
        if not verdict.allowed:
            return verdict.refusal()
        form = await _form(request)
        problem = await csrf_problem(self._access, request, form.get(CSRF_FIELD))
        if problem is not None:
            return HTMLResponse(problem, status_code=403)
        raw = request.path_params["event_id"]
        event_id = bounded_int(raw, 1, MAX_ID)
        if event_id is None:
            return HTMLResponse("event id must be a positive integer", status_code=400)
        retried = await retry_events(self._db, [event_id])
        self._shared.forget()  # the page we redirect to shows the retry
        log.info(
            "event_retry_requested",
            extra={"event": "event_retry_requested", "event_id": event_id, "ok": bool(retried)},
        )
        back = form.get("back", "/")
        if back != "/" and not back.startswith("/?"):
            back = "/"  # only the status page itself: never an open redirect
        joiner = "&" if "?" in back else "?"
        flag = "retried" if retried else "not_retried"
        return RedirectResponse(f"{back}{joiner}{flag}={event_id}", status_code=303)

    async def login_form(
        self, request: Request, *, failed: bool = False, retry_after: int | None = None
    ) -> Response:
        lang = pick_language(request)
        if not self._access.token_configured:
            return RedirectResponse(f"/?{urlencode({'lang': lang})}", 303)
        browser, nonce = browser_id(request), secrets.token_urlsafe(16)
        csrf = await csrf_token(self._access, request, browser)
        html = _templates.get_template("status.html").render(
            view="login",
            lang=lang,
            langs=LANGS,
            t=STRINGS[lang],
            csrf=csrf,
            nonce=nonce,
            login_failed=failed,
            retry_after=retry_after,
        )
        status = 429 if retry_after is not None else 401 if failed else 200
        response = self._render(request, html, nonce, status=status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        remember_csrf(request, response, browser)
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        problem = await csrf_problem(self._access, request, form.get(CSRF_FIELD))
        if problem is not None:
            return HTMLResponse(problem, status_code=403)
        verdict = self._access.attempt(request, form.get("token", ""), "login")
        if verdict.retry_after is not None:
            return await self.login_form(request, retry_after=verdict.retry_after)
        if not verdict.allowed:
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
        problem = await csrf_problem(self._access, request, form.get(CSRF_FIELD))
        if problem is not None:
            return HTMLResponse(problem, status_code=403)
        try:
            await self._access.end_session(request)  # a copy of the cookie stops working too
        except SQLAlchemyError:
            # Never pretend: the session would stay valid for whoever copied the cookie.
            return HTMLResponse(
                "database unavailable: the session could not be revoked; try again",
                status_code=503,
            )
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
        # The database figures (the same checks /health answers with, and the same cached
        # write probe) are read once a second however many browsers refresh the page.
        probe = probe_of(request)
        data = await self._shared.get(events_filter, lambda: self._read(events_filter, probe))
        checks, stats, activity = data["checks"], data["stats"], data["activity"]
        token, token_note = data["token"], data["token_note"]
        browser = browser_id(request)
        csrf = await csrf_token(self._access, request, browser)
        params = {
            k: v
            for k, v in request.query_params.items()
            if k in ("lang", "events", "q", "deal", "refresh")
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
            # Ids (check names, statuses, entities) and texts composed in English (details,
            # errors) in the page's language; times in AMOSYNC_TIMEZONE.
            "label": gettext_for(lang),
            "tr": lambda text: translate(text or "", lang, self._zone),
            "when": lambda value: local_when(value, self._zone),
            "when_iso": lambda value: _when_iso(value, self._zone),
            "age": age,
            "now": datetime.now(UTC),
            "nonce": secrets.token_urlsafe(16),
            "csrf": csrf,
            "csrf_browser": browser,
            "token_mode": self._access.token_configured,
            "refresh_seconds": _refresh_seconds(request),
            # Token and subscription get their own rows, shown even when not applicable.
            "checks": {
                name: check
                for name, check in checks.items()
                if name not in ("amocrm_token_expiry", "webhook_subscription")
            },
            "alert": sync_alert(checks),
            "token": token,
            "token_note": token_note,
            "token_check": _token_check(checks),
            "subscription": checks.get("webhook_subscription"),
            "stats": stats,
            "budget": self._settings.api_budget_per_hour,
            "rate": f"{self._settings.api_rate_limit:g}",
            "chart_hours": CHART_HOURS,
            "activity": activity,
            "chart": Markup(  # noqa: S704 - built from numbers and our own label strings
                chart_svg(
                    activity,
                    {"chart_title": t["chart_title"].format(hours=CHART_HOURS)},
                    zone=self._zone,
                )
            )
            if activity is not None
            else "",
            **data["verify"],
            "verify_per_hour": self._settings.verify_calls_per_hour,
            "events_filter": events_filter,
            "events": data["events"],
        }

    async def _read(self, events_filter: str, probe: HealthProbe) -> dict[str, Any]:
        """What the page shows from the database; shared by the requests of one second.
        With the storage failing the figures cannot be read: the banner says why."""
        checks = await run_checks(self._settings, self._db, probe)
        if not checks["database"].ok:
            return {
                "checks": checks,
                "stats": None,
                "activity": None,
                "token": None,
                "token_note": None,
                "verify": {},
                "events": [],
            }
        stats = await collect_stats(self._db, totals_max_age=PAGE_TOTALS_MAX_AGE)
        token, token_note = await self._token()
        return {
            "checks": checks,
            "stats": stats,
            "activity": await per_minute(self._db, CHART_HOURS),
            "token": token,
            "token_note": token_note,
            "verify": await verify_context(self._db, stats.last_verify),
            "events": await list_events(self._db, status=events_filter or None, limit=EVENTS_SHOWN),
        }

    async def _token(self) -> tuple[TokenExpiry | None, str | None]:
        try:
            return await token_expiry(self._settings, self._db), None
        except SQLAlchemyError as exc:
            return None, f"unreadable: {str(exc).splitlines()[0][:120]}"

    async def _search(self, q: str) -> list[dict[str, Any]]:
        """Deals by id, name, RentProg ID, or a contact's name, e-mail or phone
        (web/search.py), the most recently changed first."""
        return await search_deals(self._db, q, SEARCH_SHOWN)


def _token_check(checks: dict[str, Check]) -> Check:
    """The token row agrees with /health: failing when amoCRM refused the credentials or
    the token expired, a warning when it expires soon."""
    credentials, expiry = checks.get("amocrm_credentials"), checks.get("amocrm_token_expiry")
    if credentials is not None and credentials.state == FAIL:
        return credentials
    return expiry or Check(OK, "")


def _when_iso(value: str | None, zone: tzinfo) -> str:
    try:
        return local_when(datetime.fromisoformat(value), zone) if value else "—"
    except ValueError:
        return value or "—"


def _refresh_seconds(request: Request) -> int:
    """`?refresh=N` (1 to 300 seconds) for a wall screen or a test; 10 otherwise."""
    asked = bounded_int(request.query_params.get("refresh", ""), 0, MAX_ID)
    return REFRESH_SECONDS if asked is None else min(max(asked, 1), 300)


def _flash(request: Request) -> str | None:
    t = STRINGS[pick_language(request)]
    for key in ("retried", "not_retried"):
        event_id = bounded_int(request.query_params.get(key, ""), 1, MAX_ID)
        if event_id is not None:
            return t[key].format(id=event_id)
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
