"""Translating texts composed elsewhere in English (health details, token lines, stored
errors) without changing who composes them: /health JSON and logs keep the English text,
and the page and the CLI translate it here.

Each template below is an English text with `{fields}`; a text matching one is rebuilt from
the template's translation, each field translated in turn (a field may itself be a phrase,
an age such as `42 s`, or a UTC time, shown in the display zone). A text matching nothing is
shown as it is. Fields named `n…` match numbers, `time…` a `when()` UTC time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from amosync.l10n.catalog import N_, gettext_for
from amosync.l10n.zone import local_when

TEMPLATES: tuple[str, ...] = (
    # ages (core/humanize.age) and small words
    N_("{n} s"),
    N_("{n} min"),
    N_("{n} h"),
    N_("{n} days"),
    N_("never"),
    N_("no detail"),
    N_("no figures"),
    N_("nothing"),
    # health/checks.py
    N_("unreachable: {error}"),
    N_("unreadable: {error}"),
    N_("at {revision}"),
    N_("at {revision}, expected {head}: run `amosync migrate`"),
    N_("none failed in the last {window}"),
    N_(
        "{n} failed in the last {window}, still failed: see "
        "`amosync events list --status failed`, fix the cause, then "
        "`amosync events retry --failed`"
    ),
    N_(
        "no worker reported in the last 30 s: "
        "start `amosync worker` or `serve` without --no-worker"
    ),
    N_("{n} alive"),
    N_("{n} alive but paused, {state}: {detail}"),
    N_("set AMOSYNC_AMOCRM_SUBDOMAIN (or AMOSYNC_AMOCRM_BASE_URL)"),
    N_("refused ({detail}): {fix}"),
    N_(
        "re-authorise with `amosync auth login` (OAuth) or a new "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN; events wait, pending"
    ),
    N_("configured; no amoCRM API call answered yet"),
    N_("the last answered call, {age} ago"),
    N_("refused by amoCRM (401 on {seen}): {fix}"),
    N_("accepted by amoCRM ({n} on {seen})"),
    N_("no amoCRM account configured"),
    N_("no amoCRM API call made yet"),
    N_("no answer"),
    N_("last good answer {time}"),
    N_("no good answer kept"),
    N_(
        "unreachable: the last call ({age} ago) got {answer}; {good}. Check the network, "
        "DNS and AMOSYNC_AMOCRM_SUBDOMAIN; events wait and are retried"
    ),
    N_("answered {n} {age} ago"),
    N_(
        "amoCRM blocked this IP (403): no calls until {time}. "
        "Too many requests or a wrong address: check AMOSYNC_API_RATE_LIMIT and that no "
        "other client shares this IP; it resumes by itself"
    ),
    N_("paused until re-authorised: {fix}"),
    N_("paused: {detail}"),
    N_("amoCRM blocked this IP (403)"),
    N_("rate-limit pause (429) until {time}"),
    N_("{detail}: amoCRM asked for a long wait; it resumes by itself"),
    N_("not paused"),
    N_("{n} pending"),
    N_("{n} pending, oldest {n2} s"),
    N_("{n} pending, oldest {n2} s (limit {n3} s): see the worker and amoCRM checks"),
    N_("no webhook from amoCRM received yet: see webhook_subscription"),
    N_("no webhook from amoCRM received yet"),
    N_("last webhook from amoCRM {age} ago"),
    N_(
        "{detail} (more than AMOSYNC_HEALTH_WEBHOOK_SILENCE, {age}): is the "
        "subscription enabled (`amosync webhooks list`) and the URL reachable?"
    ),
    N_("not run yet"),
    N_(
        "the last verification found records it could not repair ({summary}): "
        "see its examples on the status page, then `amosync verify --all`"
    ),
    N_("last run: {summary}"),
    N_("checked {n}, diverged {n2}, repaired {n3}, unrepaired {n4}"),
    # health/probe.py
    N_("{what} has not finished within {n} s"),
    N_("{what} failed: {error}"),
    N_("answers"),
    N_("writable"),
    N_("a query"),
    N_("a test write"),
    N_(
        "webhook commits fail: {error} (webhooks get 503; "
        "free disk space or fix the database, amoCRM delivers again)"
    ),
    # amocrm/token_info.py
    N_("long-lived token"),
    N_("OAuth refresh token"),
    N_("{what}: expiry unknown"),
    N_("{what} expired {time}"),
    N_("{what} expires {time} (in {span})"),
    N_("{what}: {renew}"),
    N_("warning: {what}"),
    N_("create a new long-lived token and set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN"),
    N_("re-authorise with `amosync auth login` (or `auth url` + `auth exchange CODE`)"),
    N_(
        "no OAuth tokens stored yet: run `amosync auth url` and "
        "`amosync auth exchange CODE` (or `amosync auth login`)"
    ),
    N_(
        "set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN, or set AMOSYNC_AMOCRM_CLIENT_ID (with the "
        "secret and redirect URI) and run `amosync auth login`"
    ),
    # amocrm/client.py: errors kept in events' last_error ({detail} is amoCRM's own words)
    N_("{request}: amoCRM answered {n} ({detail})"),
    N_("amoCRM unreachable ({detail})"),
    N_("amoCRM refused the token (401 {detail}): re-authorise"),
    N_("amoCRM answered 403 ({detail}): requests from this IP are blocked"),
    # worker/subscription.py
    N_("not checked yet (the worker checks hourly; `amosync doctor` checks now)"),
    N_("not subscribed in amoCRM (checked {age} ago): run `amosync webhooks register`"),
    N_(
        "disabled by amoCRM after failed deliveries (checked {age} ago): fix the cause, "
        "then run `amosync webhooks register` to re-enable it"
    ),
    N_("unknown, the check failed {age} ago: {detail}"),
    N_("subscribed and enabled (checked {age} ago)"),
    N_("{detail}; not sent: {settings} (re-run register)"),
)

# Ids shown to a person: check names, event statuses, entities, actions, worker states.
LABELS: tuple[str, ...] = (
    N_("database"),
    N_("schema"),
    N_("worker"),
    N_("amocrm_credentials"),
    N_("amocrm_api"),
    N_("amocrm_pause"),
    N_("amocrm_token_expiry"),
    N_("webhook_subscription"),
    N_("backlog"),
    N_("failed_events"),
    N_("last_webhook"),
    N_("verification"),
    N_("pending"),
    N_("processing"),
    N_("done"),
    N_("failed"),
    N_("ignored"),
    N_("leads"),
    N_("contacts"),
    N_("companies"),
    N_("add"),
    N_("update"),
    N_("delete"),
    N_("restore"),
    N_("status"),
    N_("responsible"),
    N_("note"),
    N_("linked"),
    N_("running"),
    N_("idle"),
    N_("stopped"),
    N_("reauth_required"),
    N_("ip_blocked"),
)

_FIELD = re.compile(r"\{(\w+)\}")
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? UTC"
_MAX_DEPTH = 4


def _pattern(template: str) -> re.Pattern[str]:
    pieces = _FIELD.split(template)
    regex = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            regex.append(re.escape(piece))
        elif piece.startswith("time"):
            regex.append(f"(?P<{piece}>{_TIME})")
        elif piece.startswith("n"):
            regex.append(rf"(?P<{piece}>-?\d[\d.,]*)")
        else:
            regex.append(f"(?P<{piece}>.+?)")
    return re.compile("".join(regex), re.DOTALL)


# The most literal text first, so "{n} pending, oldest …" wins over "{n} pending".
_COMPILED = sorted(
    ((_pattern(t), t) for t in TEMPLATES if _FIELD.search(t)),
    key=lambda pair: -len(_FIELD.sub("", pair[1])),
)


def translate(text: str, lang: str) -> str:
    """`text` (composed in English) in `lang`, times in the display zone."""
    return _translate(text, gettext_for(lang), 0)


def _translate(text: str, _: Callable[[str], str], depth: int) -> str:
    if not text or depth > _MAX_DEPTH:
        return text
    exact = _(text)
    if exact != text:
        return exact
    if re.fullmatch(_TIME, text):
        return _local(text)
    for pattern, template in _COMPILED:
        match = pattern.fullmatch(text)
        if match is not None:
            fields = {k: _translate(v, _, depth + 1) for k, v in match.groupdict().items()}
            return _(template).format(**fields)
    return text


def _local(stamp: str) -> str:
    raw = stamp.removesuffix(" UTC")
    layout = "%Y-%m-%d %H:%M:%S" if raw.count(":") == 2 else "%Y-%m-%d %H:%M"
    return local_when(datetime.strptime(raw, layout).replace(tzinfo=UTC))
