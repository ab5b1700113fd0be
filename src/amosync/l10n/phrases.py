"""Translating texts composed elsewhere in English (health details, token lines, stored
errors) without changing who composes them: /health JSON and logs keep the English text,
and the page and the CLI translate it here.

Each template below is an English text with `{fields}`; a text matching one is rebuilt from
the template's translation, each field translated in turn (a field may itself be a phrase,
an age such as `42 s`, or a UTC time, shown in the display zone). A text matching nothing is
shown as it is. Fields `n`, `n2`… match numbers, `time…` a `when()` UTC time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

from amosync.l10n.catalog import N_, gettext_for, translations
from amosync.l10n.zone import display_zone, local_when

TEMPLATES: tuple[str, ...] = (
    # two texts said one after the other (a token's expiry; its refusal)
    N_("{first}; {then}"),
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
        "no worker reported in the last 30 s: start `amosync worker` or `serve` without --no-worker"
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
    # catchup/summary.py, catchup/verify_state.py (lines of `amosync status`)
    N_("{total} ({parts})"),
    N_("{line}; catch-up budget {spent} of {budget}"),
    N_("never ran"),
    N_("{n} min ago: {fetched} fetched, {deleted} deleted, {calls} calls"),
    N_("{line}; stopped early ({stopped}), continues next run"),
    N_("{n} min ago: {checked} checked, {diverged} diverged, {repaired} repaired"),
    N_("{line}, {n} NOT repaired"),
    # API requests by purpose (catchup/summary.py spend_line), a comma-separated list
    N_("webhook {n}"),
    N_("catchup {n}"),
    N_("backfill {n}"),
    N_("verify {n}"),
    N_("check {n}"),
    N_("cli {n}"),
    N_("verify-cli {n}"),
    N_("subscription {n}"),
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

# doctor/checks.py and doctor/facts.py (the names of its checks are in LABELS)
DOCTOR: tuple[str, ...] = (
    N_("needs AMOSYNC_AMOCRM_SUBDOMAIN"),
    N_("needs a token and, for OAuth, the migrated database"),
    N_("{before} (or the OAuth AMOSYNC_AMOCRM_CLIENT_*){after}"),
    N_("missing: {names}"),
    N_("set them in the environment or .env (see .env.example and the setup guide)"),
    N_("complete"),
    N_("every AMOSYNC_* variable is a setting"),
    N_("rename or remove them (the README's configuration table lists every setting)"),
    N_("{name} (in {source}) is not an amosync setting and is ignored"),
    N_("{name} (in {source}) is not an amosync setting and is ignored; did you mean {closest}?"),
    N_(
        "unset AMOSYNC_AMOCRM_CLIENT_ID to use the long-lived token, or unset "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN to keep OAuth"
    ),
    N_(
        "both AMOSYNC_AMOCRM_CLIENT_ID (OAuth) and AMOSYNC_AMOCRM_LONG_LIVED_TOKEN are set: "
        "OAuth is used and the long-lived token is ignored; unset the one you do not want"
    ),
    N_("OAuth (AMOSYNC_AMOCRM_CLIENT_ID is set; tokens from `amosync auth login`)"),
    N_("the long-lived token (AMOSYNC_AMOCRM_LONG_LIVED_TOKEN)"),
    N_("no token configured (OAuth tokens stored by `amosync auth`, if any)"),
    N_("uses {statement}"),
    N_("check AMOSYNC_DATABASE_URL and that the database server runs"),
    N_("reachable"),
    N_("needs the database"),
    N_("needs the migrated database"),
    N_("OAuth tokens live in the database, which is not ready"),
    N_("run `amosync migrate`"),
    N_("not migrated"),
    N_("{at}, expected {head}"),
    N_("migrated (at {head})"),
    N_("skipped"),
    N_("account {name} ({subdomain}, id {n})"),
    N_("the token belongs to {shown}, not to AMOSYNC_AMOCRM_ACCOUNT_ID={n}"),
    N_("use a token of the right account, or correct AMOSYNC_AMOCRM_ACCOUNT_ID"),
    N_("accepted by amoCRM: {shown}"),
    N_("no OAuth tokens stored yet"),
    N_("no token configured"),
    N_("{what} (not a readable JWT)"),
    N_("see the token's expiry in amoCRM (integration → Keys and scopes); renew it in time"),
    N_("needs AMOSYNC_PUBLIC_URL and AMOSYNC_WEBHOOK_SECRET"),
    N_("needs a working API connection (see token: {kind})"),
    N_("{url} is not subscribed in amoCRM"),
    N_("run `amosync webhooks register`"),
    N_("{url} is subscribed but DISABLED by amoCRM (too many failed deliveries)"),
    N_(
        "make sure amoCRM reaches {url}/amocrm/… over HTTPS within 2 s, then run `amosync "
        "webhooks register` to re-enable it"
    ),
    N_("{url} is enabled but not sent: {settings}"),
    N_("run `amosync webhooks register` to subscribe every event amosync syncs"),
    N_("{url} subscribed and enabled"),
    N_("start it: `amosync serve` (or pass --service-url where it runs)"),
    N_("{url} answers {n}"),
    N_("{url} answers 503; failing: {failing}"),
    N_("{url} answers {n}: not amosync's /health?"),
    N_("{url} does not answer ({error})"),
    N_("fix the failing /health checks named here"),
    N_("check AMOSYNC_HOST/AMOSYNC_PORT or pass --service-url"),
    N_("no webhook has arrived yet"),
    N_("create or edit a test deal in amoCRM, then run doctor again"),
    N_("last webhook {age} ago"),
    N_("{detail}; {n} failed events"),
    N_("see `amosync events list --status failed`, then `amosync events retry --failed`"),
    N_("{detail}: a quiet account, or webhooks stopped arriving"),
    N_(
        "{detail}: a quiet account, or webhooks stopped arriving "
        "(AMOSYNC_HEALTH_WEBHOOK_SILENCE is {age})"
    ),
    N_("edit a test deal in amoCRM and check the `webhook` item above"),
    N_("lead field {name} (id {n})"),
    N_("no lead custom field with id {n}"),
    N_("no lead custom field with id {n}; a field named {name} has id {n2}"),
    N_("set AMOSYNC_RENTPROG_FIELD_ID to the id of the lead field holding the RentProg ID"),
    N_("found by name {name} (id {n}); a rename in amoCRM would break it"),
    N_("set AMOSYNC_RENTPROG_FIELD_ID={n}"),
    N_("no lead custom field named {name} among {n} fields"),
    N_("create it in amoCRM (Settings → Fields → Leads), or set AMOSYNC_RENTPROG_FIELD_ID"),
    N_("wait for the block to pass (about 10 min); keep AMOSYNC_API_RATE_LIMIT ≤ 7"),
    N_("amoCRM asked for a pause (429); run `amosync doctor` again when it has passed"),
    N_("check AMOSYNC_AMOCRM_SUBDOMAIN / AMOSYNC_AMOCRM_BASE_URL and the network"),
    N_("fix the database first (see above)"),
    N_("check the detail; the integration may lack admin rights or this plan's API access"),
    N_("re-authorise: `amosync auth login` (or `amosync auth url` + `auth exchange`)"),
    N_(
        "generate a new long-lived token (integration → Keys and scopes) and set "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN"
    ),
    N_("no answer from amoCRM within {n} s"),
    N_("database: {error}"),
    # AMOSYNC_DEAL_FIELD_COLUMNS (core/field_columns.py, db/wide_view.py)
    N_("“{item}” is not alias:field_id (e.g. rental_start:123456)"),
    N_("alias “{name}” must be lower-case latin letters, digits and _, not starting with a digit"),
    N_("alias “{name}” is longer than {n} characters"),
    N_("alias “{name}” is a reserved SQL word"),
    N_("alias “{name}” is given twice"),
    N_("field {n} is given twice (as “{name}” and “{name2}”)"),
    N_("field id “{value}” of “{name}” is not a positive whole number"),
    N_("{setting}: alias “{name}” is already a column of {view}"),
    N_("{setting}: field {n} (“{name}”) is not a deal custom field of this amoCRM account"),
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
    N_("long-lived"),
    N_("webhook"),
    N_("n8n"),
    N_("catchup"),
    N_("backfill"),
    N_("oauth"),
    N_("settings"),
    N_("unknown_variables"),
    N_("token_choice"),
    N_("token"),
    N_("token_expiry"),
    N_("webhook"),
    N_("service"),
    N_("events"),
    N_("rentprog_field"),
    N_("user_names"),
    N_("the user list is readable (names of users)"),
    N_(
        "amoCRM refuses the user list (403): the token's user is not an account "
        "administrator, so deals show no user names (everything else syncs)"
    ),
    N_("authorise amosync as an administrator of the amoCRM account"),
)

_FIELD = re.compile(r"\{(\w+)\}")
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? UTC"
_MAX_DEPTH = 4


def template_pattern(template: str, greedy: bool = False) -> re.Pattern[str]:
    """`template` as a regex: literal text as it is, each `{field}` a named group."""
    pieces = _FIELD.split(template)
    regex = []
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            regex.append(re.escape(piece))
        elif piece.startswith("time"):
            regex.append(f"(?P<{piece}>{_TIME})")
        elif re.fullmatch(r"n\d*", piece):
            regex.append(rf"(?P<{piece}>-?\d[\d.,]*)")
        else:
            regex.append(f"(?P<{piece}>.+)" if greedy else f"(?P<{piece}>.+?)")
    return re.compile("".join(regex), re.DOTALL)


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[tuple[str, str], tuple[re.Pattern[str], re.Pattern[str]], str]]:
    """Every msgid with fields (the ones above and any marked elsewhere, such as a
    validator's message), the most literal first: "{n} pending, oldest …" wins over
    "{n} pending". Each with its fields matched shortest-first and longest-first: a field
    may hold a text with the template's own separators, as in "refused (amoCRM refused the
    token (401 …): re-authorise): …", where only the longest first field splits it right."""
    known: dict[object, str] = getattr(translations("ru"), "_catalog", {})
    templates = {m for m in known if isinstance(m, str) and _FIELD.search(m)}
    templates.update(t for t in TEMPLATES + DOCTOR if _FIELD.search(t))
    return sorted(
        ((_ends(t), (template_pattern(t), template_pattern(t, greedy=True)), t) for t in templates),
        key=lambda known: (-len(_FIELD.sub("", known[2])), known[2]),
    )


def _ends(template: str) -> tuple[str, str]:
    """The literal text before the first field and after the last: a cheap test first."""
    pieces = _FIELD.split(template)
    return pieces[0], pieces[-1] if len(pieces) > 1 else ""


def translate(text: str, lang: str, zone: tzinfo | None = None) -> str:
    """`text` (composed in English) in `lang`, its UTC times in `zone` (default: the
    display zone)."""
    # the zone resolved here: a cached reading must not keep an earlier display zone
    return _translate(text, lang, zone or display_zone(), 0)[0]


_LATIN = re.compile(r"[A-Za-z]+")


# The page asks for the same texts at every refresh, and one text's readings share pieces.
@lru_cache(maxsize=4096)
def _translate(text: str, lang: str, zone: tzinfo | None, depth: int) -> tuple[str, int]:
    """The translation and how many Latin words of its pieces stayed as they were (0: all
    translated). The first reading that translates every piece wins, else the one leaving
    the fewest (a field may hold amoCRM's own words, which no catalogue translates)."""
    untranslated = (text, len(_LATIN.findall(text)))
    if not text or depth > _MAX_DEPTH:
        return untranslated
    _ = gettext_for(lang)
    exact = _(text)
    if exact != text:
        return exact, 0
    if re.fullmatch(_TIME, text):
        return _local(text, zone), 0
    best = untranslated
    for (head, tail), patterns, template in _compiled():
        if not (text.startswith(head) and text.endswith(tail)):
            continue
        for pattern in patterns:
            match = pattern.fullmatch(text)
            if match is None:
                continue
            fields = {k: _translate(v, lang, zone, depth + 1) for k, v in match.groupdict().items()}
            said = _(template).format(**{k: shown for k, (shown, _left) in fields.items()})
            left = sum(n for _shown, n in fields.values())
            if left == 0:
                return said, 0
            if left < best[1]:
                best = (said, left)
    if ", " in text:  # a list (API requests by purpose, missing settings): item by item
        items = [_translate(item, lang, zone, depth + 1) for item in text.split(", ")]
        left = sum(n for _shown, n in items)
        if left < best[1]:
            best = (", ".join(shown for shown, _n in items), left)
    return best


def _local(stamp: str, zone: tzinfo | None) -> str:
    raw = stamp.removesuffix(" UTC")
    layout = "%Y-%m-%d %H:%M:%S" if raw.count(":") == 2 else "%Y-%m-%d %H:%M"
    return local_when(datetime.strptime(raw, layout).replace(tzinfo=UTC), zone)
