"""The status page's words (translated by the catalogue in amosync/l10n), and picking a
language for a request.

`?lang=ru|en` wins (and is remembered in a cookie); then the cookie; then the best of the
two in `Accept-Language`; English otherwise.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from amosync.l10n import LANGS as LANGS
from amosync.l10n import N_, gettext_for
from amosync.l10n.catalog import from_accept_language as preferred_language

LANG_COOKIE = "amosync_lang"

# The page's words by key; the English text is the msgid of the catalogue (amosync/l10n),
# which holds every translation.
MESSAGES: dict[str, str] = {
    "title": N_("amosync status"),
    "login_title": N_("amosync: log in"),
    "login_prompt": N_("Enter the admin token (AMOSYNC_ADMIN_TOKEN)."),
    "login_button": N_("Log in"),
    "login_failed": N_("Wrong token."),
    "login_throttled": N_("Too many wrong tokens from your address: try again in {seconds} s."),
    "logout": N_("Log out"),
    "loopback_notice": N_(
        "No AMOSYNC_ADMIN_TOKEN is configured: this page, the read API and the metrics are "
        "served to this machine (loopback) only."
    ),
    "health": N_("Health checks"),
    "check": N_("Check"),
    "state": N_("State"),
    "detail": N_("Detail"),
    "ok": N_("ok"),
    "failing": N_("failing"),
    "unknown": N_("unknown"),
    "token": N_("amoCRM token"),
    "token_kind": N_("Kind"),
    "access_expires": N_("Access token expires"),
    "refresh_expires": N_("Refresh token expires"),
    "subscription": N_("Webhook subscription"),
    "no_public_url": N_("not checked: set AMOSYNC_PUBLIC_URL and AMOSYNC_WEBHOOK_SECRET"),
    "counters": N_("Counters"),
    "deals": N_("Deals"),
    "deals_rentprog": N_("Deals with RentProg ID"),
    "contacts": N_("Contacts"),
    "events_by_status": N_("Events by status"),
    "backlog": N_("Backlog (pending)"),
    "oldest_pending": N_("Oldest pending"),
    "api_last_hour": N_("API requests in the last hour"),
    "budget": N_("catch-up budget {budget}/h, rate limit {rate}/s"),
    "last_webhook": N_("Last webhook from amoCRM"),
    "chart_title": N_("Events per minute, last {hours} h"),
    "received": N_("received"),
    "processed": N_("processed"),
    "latest_events": N_("Latest events"),
    "all": N_("all"),
    "failed_only": N_("failed only"),
    "id": N_("ID"),
    "received_at": N_("Received"),
    "entity": N_("Entity"),
    "action": N_("Action"),
    "entity_id": N_("Entity ID"),
    "status": N_("Status"),
    "attempts": N_("Attempts"),
    "error": N_("Error"),
    "retry": N_("Retry"),
    "no_events": N_("No events."),
    "retried": N_("Event {id} is queued again."),
    "not_retried": N_("Event {id} was not failed; nothing changed."),
    "search": N_("Find a deal"),
    "search_hint": N_("Deal, RentProg ID, client name, phone or e-mail"),
    "search_button": N_("Search"),
    "no_deal": N_("No deal found for “{q}”."),
    "name": N_("Name"),
    "price": N_("Price"),
    "rentprog_id": N_("RentProg ID"),
    "updated": N_("Updated in amoCRM"),
    "deleted": N_("deleted"),
    "deal_title": N_("Deal {name}"),
    "deal_missing": N_("Deal {id} is not stored."),
    "close_deal": N_("Close"),
    "pipeline": N_("Pipeline"),
    "stage": N_("Stage"),
    "manager": N_("Manager"),
    "loss_reason": N_("Loss reason"),
    "created": N_("Created in amoCRM"),
    "tags": N_("Tags"),
    "fields": N_("Fields"),
    "field": N_("Field"),
    "value": N_("Value"),
    "no_fields": N_("No custom fields filled in."),
    "phones": N_("Phones"),
    "emails": N_("E-mails"),
    "main_contact": N_("main"),
    "not_fetched": N_("not fetched yet"),
    "companies": N_("Companies"),
    "timeline": N_("Stage timeline"),
    "entered": N_("Entered"),
    "left": N_("Left"),
    "time_in_stage": N_("Time in stage"),
    "moved_by": N_("Moved by"),
    "source": N_("Source"),
    "source_events_api": N_("amoCRM event"),
    "source_observed": N_("seen by amosync"),
    "source_first_seen": N_("first stored"),
    "still_there": N_("still there"),
    "no_history": N_("No stage changes recorded yet."),
    "robot": N_("amoCRM (robot)"),
    "kind_open": N_("open"),
    "kind_won": N_("won"),
    "kind_lost": N_("lost"),
    "yes": N_("yes"),
    "no": N_("no"),
    "pipelines": N_("Deals by stage"),
    "no_pipelines": N_("No pipelines known yet: the worker reads them from amoCRM."),
    "unnamed": N_("unnamed ({id})"),
    "refreshed": N_("Refreshed"),
    "seconds": N_("{n} s"),
    "verification": N_("Verification against amoCRM"),
    "verify_at": N_("Last run"),
    "verify_checked": N_("Rows compared"),
    "verify_diverged": N_("Differed from amoCRM"),
    "verify_repaired": N_("Repaired"),
    "verify_unrepaired": N_("Not repaired"),
    "verify_examples": N_("Examples"),
    "verify_never": N_(
        "No verification has run yet (amosync verify, or the worker in the background)."
    ),
    "verify_coverage": N_("{entity}: {verified} of {stored} verified"),
    "verify_background": N_("The worker verifies {calls} batches an hour (up to {rows} rows)."),
    "verify_off": N_("Background verification is off (AMOSYNC_VERIFY_CALLS_PER_HOUR=0)."),
    "none": N_("—"),
    "warn": N_("warning"),
    "since": N_("Since"),
    "ago": N_("{age} ago"),
    "banner_storage": N_("Sync is stopped: the database does not accept writes."),
    "fix_storage": N_(
        "Webhooks are answered 503 and amoCRM delivers them again later. Free disk space or "
        "repair the database; if its file was deleted or replaced, restore it and restart "
        "amosync."
    ),
    "banner_schema": N_("Sync is stopped: the database schema is not up to date."),
    "fix_schema": N_("Run `amosync migrate`, then restart amosync."),
    "banner_paused": N_("Sync is paused."),
    "fix_paused": N_(
        "Nothing is lost: events wait (pending) and are processed once the pause ends. If "
        "amoCRM refused the token, re-authorise (`amosync auth login`, or a new long-lived "
        "token); an IP block or a rate-limit pause ends by itself."
    ),
    "banner_credentials": N_("Sync is paused: amoCRM refuses our credentials."),
    "fix_credentials": N_(
        "Re-authorise: `amosync auth login` (OAuth) or set a new "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN and restart. Events wait (pending) meanwhile."
    ),
    "banner_worker": N_("Sync is stopped: no worker is running."),
    "fix_worker": N_(
        "Start `amosync worker`, or `amosync serve` without --no-worker. Webhooks are still "
        "stored meanwhile."
    ),
    "banner_unreachable": N_("Sync is stalled: amoCRM does not answer."),
    "fix_unreachable": N_(
        "Check the network, DNS and AMOSYNC_AMOCRM_SUBDOMAIN. Events are retried; those out "
        "of attempts end failed and can be retried below."
    ),
    "banner_backlog": N_("Sync is stalled: events wait too long."),
    "fix_backlog": N_(
        "See the worker and amoCRM checks below; the backlog drains once they are ok."
    ),
    "banner_silence": N_("No webhook from amoCRM for too long."),
    "fix_silence": N_(
        "Check the webhook subscription (`amosync webhooks list`, then `amosync webhooks "
        "register`) and that amoCRM reaches the public URL."
    ),
}

STRINGS: dict[str, dict[str, str]] = {
    lang: {key: gettext_for(lang)(text) for key, text in MESSAGES.items()} for lang in LANGS
}


def pick_language(conn: HTTPConnection) -> str:
    asked = conn.query_params.get("lang", "")
    if asked in LANGS:
        return asked
    remembered = conn.cookies.get(LANG_COOKIE, "")
    if remembered in LANGS:
        return remembered
    return from_accept_language(conn.headers.get("accept-language", ""))


def from_accept_language(header: str) -> str:
    """The supported language with the highest q-value (ties: the one listed first)."""
    return preferred_language(header) or "en"
