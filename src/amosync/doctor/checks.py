"""`amosync doctor`'s checks: pure functions from gathered facts to ✓/!/✗ with a one-line fix.

The operator's manual checklist, as code: settings complete, database reachable and migrated,
token accepted by amoCRM and not about to expire, our webhook subscribed and enabled, the
service answering `/health`, webhooks arriving, the RentProg ID field present. Gathering
the facts (database, API, HTTP) lives in `facts.py`, so every verdict here is unit-tested
without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from amosync.amocrm.token_info import TokenExpiry, token_choice
from amosync.amocrm.webhooks import Subscription, mask_url, our_destination
from amosync.core.humanize import age as format_age
from amosync.settings import Settings
from amosync.settings_audit import UnknownVariable

T = TypeVar("T")
Status = Literal["ok", "warn", "fail", "skip"]
ErrorKind = Literal[
    "reauth", "ip_blocked", "paused", "unreachable", "rejected", "database", "skipped"
]

EVENTS_QUIET_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one probe found: a value, or why there is none (`kind` says what went wrong)."""

    value: T | None = None
    error: str | None = None
    kind: ErrorKind | None = None

    @classmethod
    def skipped(cls, why: str) -> Outcome[T]:
        return cls(error=why, kind="skipped")


@dataclass(frozen=True)
class ServiceAnswer:
    url: str
    status_code: int
    body: Any


@dataclass(frozen=True)
class EventFacts:
    last_received_at: datetime | None
    failed: int


@dataclass(frozen=True)
class Facts:
    now: datetime
    database: Outcome[bool] = field(default_factory=Outcome)  # value: reachable
    revision: Outcome[str | None] = field(default_factory=Outcome)
    head: str | None = None
    account: Outcome[dict[str, Any]] = field(default_factory=Outcome)
    token: Outcome[TokenExpiry | None] = field(default_factory=Outcome)
    subscriptions: Outcome[list[Subscription]] = field(default_factory=Outcome)
    service: Outcome[ServiceAnswer] = field(default_factory=Outcome)
    events: Outcome[EventFacts] = field(default_factory=Outcome)
    lead_fields: Outcome[list[dict[str, Any]]] = field(default_factory=Outcome)
    # `GET /api/v4/users?limit=1`: the user list (admin-only), or a "rejected" 403.
    users: Outcome[int] = field(default_factory=Outcome)
    # `AMOSYNC_*` names in the environment or .env that are no setting (settings_audit.py).
    unknown_variables: list[UnknownVariable] = field(default_factory=list)


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def run_checks(settings: Settings, facts: Facts) -> list[CheckResult]:
    checks: list[Callable[[Settings, Facts], CheckResult]] = [
        check_settings,
        check_unknown_variables,
        check_token_choice,
        check_database,
        check_schema,
        check_token,
        check_token_expiry,
        check_webhook,
        check_service,
        check_events,
        check_rentprog_field,
        check_user_names,
    ]
    return [check(settings, facts) for check in checks]


def failed(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.status == "fail"]


# -- one function per item of the checklist ---------------------------------------------


def check_settings(settings: Settings, facts: Facts) -> CheckResult:
    missing = missing_settings(settings)
    if missing:
        return CheckResult(
            "settings",
            "fail",
            "missing: " + ", ".join(missing),
            "set them in the environment or .env (see .env.example and the setup guide)",
        )
    return CheckResult("settings", "ok", "complete")


def check_unknown_variables(settings: Settings, facts: Facts) -> CheckResult:
    unknown = facts.unknown_variables
    if not unknown:
        return CheckResult("unknown_variables", "ok", "every AMOSYNC_* variable is a setting")
    return CheckResult(
        "unknown_variables",
        "warn",
        "; ".join(u.describe() for u in unknown),
        "rename or remove them (docs/CONFIGURATION.md lists every setting)",
    )


def check_token_choice(settings: Settings, facts: Facts) -> CheckResult:
    choice = token_choice(settings)
    if choice.warning:
        return CheckResult(
            "token_choice",
            "warn",
            choice.warning,
            "unset AMOSYNC_AMOCRM_CLIENT_ID to use the long-lived token, or unset "
            "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN to keep OAuth",
        )
    if choice.kind is None:
        return CheckResult("token_choice", "skip", choice.statement)
    return CheckResult("token_choice", "ok", f"uses {choice.statement}")


def missing_settings(settings: Settings) -> list[str]:
    """The variables amosync still needs to sync a real account, in the guide's order."""
    missing: list[str] = []
    if settings.api_base_url is None:
        missing.append("AMOSYNC_AMOCRM_SUBDOMAIN")
    oauth = [
        ("AMOSYNC_AMOCRM_CLIENT_ID", settings.amocrm_client_id),
        ("AMOSYNC_AMOCRM_CLIENT_SECRET", settings.amocrm_client_secret),
        ("AMOSYNC_AMOCRM_REDIRECT_URI", settings.amocrm_redirect_uri),
    ]
    if settings.amocrm_client_id:
        missing.extend(name for name, value in oauth if not value)
    elif settings.amocrm_long_lived_token is None:
        missing.append("AMOSYNC_AMOCRM_LONG_LIVED_TOKEN (or the OAuth AMOSYNC_AMOCRM_CLIENT_*)")
    if settings.webhook_secret is None:
        missing.append("AMOSYNC_WEBHOOK_SECRET")
    if settings.public_url is None:
        missing.append("AMOSYNC_PUBLIC_URL")
    return missing


def check_database(settings: Settings, facts: Facts) -> CheckResult:
    if facts.database.error:
        return CheckResult(
            "database",
            "fail",
            f"unreachable: {facts.database.error}",
            "check AMOSYNC_DATABASE_URL and that the database server runs",
        )
    return CheckResult("database", "ok", "reachable")


def check_schema(settings: Settings, facts: Facts) -> CheckResult:
    if facts.database.error or facts.revision.kind == "skipped":
        return CheckResult("schema", "skip", "needs the database")
    if facts.revision.error:
        return CheckResult("schema", "fail", facts.revision.error, "run `amosync migrate`")
    if facts.revision.value != facts.head:
        at = f"at {facts.revision.value}" if facts.revision.value else "not migrated"
        return CheckResult(
            "schema", "fail", f"{at}, expected {facts.head}", "run `amosync migrate`"
        )
    return CheckResult("schema", "ok", f"migrated (at {facts.head})")


def check_token(settings: Settings, facts: Facts) -> CheckResult:
    outcome = facts.account
    if outcome.kind == "skipped":
        return CheckResult("token", "skip", outcome.error or "skipped")
    if outcome.error or outcome.value is None:
        return CheckResult(
            "token", "fail", outcome.error or "no answer", _api_fix(settings, outcome)
        )
    account = outcome.value
    account_id = account.get("id")
    shown = f"account {account.get('name')!r} ({account.get('subdomain')}, id {account_id})"
    expected = settings.amocrm_account_id
    if expected is not None and account_id != expected:
        return CheckResult(
            "token",
            "fail",
            f"the token belongs to {shown}, not to AMOSYNC_AMOCRM_ACCOUNT_ID={expected}",
            "use a token of the right account, or correct AMOSYNC_AMOCRM_ACCOUNT_ID",
        )
    return CheckResult("token", "ok", f"accepted by amoCRM: {shown}")


def check_token_expiry(settings: Settings, facts: Facts) -> CheckResult:
    outcome = facts.token
    renew = _renew_fix(settings)
    if outcome.kind == "skipped":
        return CheckResult("token_expiry", "skip", outcome.error or "skipped")
    if outcome.error:
        return CheckResult("token_expiry", "fail", outcome.error, renew)
    expiry = outcome.value
    if expiry is None:
        if settings.amocrm_client_id:
            return CheckResult("token_expiry", "fail", "no OAuth tokens stored yet", renew)
        return CheckResult("token_expiry", "skip", "no token configured")
    if expiry.expires_at is None:
        return CheckResult(
            "token_expiry",
            "warn",
            expiry.describe(facts.now) + " (not a readable JWT)",
            "see the token's expiry in amoCRM (integration → Keys and scopes); renew it in time",
        )
    if expiry.is_expired(facts.now):
        return CheckResult("token_expiry", "fail", expiry.describe(facts.now), renew)
    if expiry.needs_warning(settings, facts.now):
        return CheckResult("token_expiry", "warn", expiry.describe(facts.now), renew)
    return CheckResult("token_expiry", "ok", expiry.describe(facts.now))


def check_webhook(settings: Settings, facts: Facts) -> CheckResult:
    destination = our_destination(settings)
    if destination is None:
        return CheckResult("webhook", "skip", "needs AMOSYNC_PUBLIC_URL and AMOSYNC_WEBHOOK_SECRET")
    secret = settings.webhook_secret_text
    shown = mask_url(destination, secret)
    outcome = facts.subscriptions
    if outcome.kind == "skipped":
        return CheckResult("webhook", "skip", outcome.error or "skipped")
    if outcome.error or outcome.value is None:
        return CheckResult(
            "webhook", "fail", outcome.error or "no answer", _api_fix(settings, outcome)
        )
    ours = [s for s in outcome.value if s.destination == destination]
    if not ours:
        return CheckResult(
            "webhook",
            "fail",
            f"{shown} is not subscribed in amoCRM",
            "run `amosync webhooks register`",
        )
    hook = ours[0]
    if hook.disabled:
        return CheckResult(
            "webhook",
            "fail",
            f"{shown} is subscribed but DISABLED by amoCRM (too many failed deliveries)",
            f"make sure amoCRM reaches {settings.public_url}/amocrm/… over HTTPS within 2 s, "
            "then run `amosync webhooks register` to re-enable it",
        )
    missing = hook.missing_settings()
    if missing:
        return CheckResult(
            "webhook",
            "warn",
            f"{shown} is enabled but not sent: {', '.join(missing)}",
            "run `amosync webhooks register` to subscribe every event amosync syncs",
        )
    return CheckResult("webhook", "ok", f"{shown} subscribed and enabled")


def check_service(settings: Settings, facts: Facts) -> CheckResult:
    outcome = facts.service
    start = "start it: `amosync serve` (or pass --service-url where it runs)"
    if outcome.error or outcome.value is None:
        return CheckResult("service", "fail", outcome.error or "no answer", start)
    answer = outcome.value
    if answer.status_code == 200:
        return CheckResult("service", "ok", f"{answer.url} answers 200")
    checks = answer.body.get("checks") if isinstance(answer.body, dict) else None
    if answer.status_code == 503 and isinstance(checks, dict):
        failing = [
            f"{name} ({info.get('detail')})"
            for name, info in checks.items()
            if isinstance(info, dict) and not info.get("ok")
        ]
        return CheckResult(
            "service",
            "fail",
            f"{answer.url} answers 503; failing: " + "; ".join(failing),
            "fix the failing /health checks named here",
        )
    return CheckResult(
        "service",
        "fail",
        f"{answer.url} answers {answer.status_code}: not amosync's /health?",
        "check AMOSYNC_HOST/AMOSYNC_PORT or pass --service-url",
    )


def check_events(settings: Settings, facts: Facts) -> CheckResult:
    outcome = facts.events
    if outcome.kind == "skipped" or (outcome.error is None and outcome.value is None):
        return CheckResult("events", "skip", outcome.error or "needs the database")
    if outcome.error or outcome.value is None:
        return CheckResult("events", "fail", outcome.error or "no answer", "run `amosync migrate`")
    events = outcome.value
    if events.last_received_at is None:
        return CheckResult(
            "events",
            "fail",
            "no webhook has arrived yet",
            "create or edit a test deal in amoCRM, then run doctor again",
        )
    age = facts.now - events.last_received_at
    detail = f"last webhook {format_age(age)} ago"
    if events.failed:
        return CheckResult(
            "events",
            "warn",
            f"{detail}; {events.failed} failed events",
            "see `amosync events list --status failed`, then `amosync events retry --failed`",
        )
    silence = settings.health_webhook_silence
    if age > (timedelta(seconds=silence) if silence else EVENTS_QUIET_AFTER):
        return CheckResult(
            "events",
            "warn",
            f"{detail}: a quiet account, or webhooks stopped arriving"
            + (f" (AMOSYNC_HEALTH_WEBHOOK_SILENCE is {format_age(silence)})" if silence else ""),
            "edit a test deal in amoCRM and check the `webhook` item above",
        )
    return CheckResult("events", "ok", detail)


def check_rentprog_field(settings: Settings, facts: Facts) -> CheckResult:
    outcome = facts.lead_fields
    if outcome.kind == "skipped":
        return CheckResult("rentprog_field", "skip", outcome.error or "skipped")
    if outcome.error or outcome.value is None:
        return CheckResult(
            "rentprog_field", "fail", outcome.error or "no answer", _api_fix(settings, outcome)
        )
    fields = outcome.value
    wanted_id, wanted_name = settings.rentprog_field_id, settings.rentprog_field_name
    if wanted_id is not None:
        by_id = [f for f in fields if f.get("id") == wanted_id]
        if by_id:
            return CheckResult(
                "rentprog_field", "ok", f"lead field {by_id[0].get('name')!r} (id {wanted_id})"
            )
        return CheckResult(
            "rentprog_field",
            "fail",
            f"no lead custom field with id {wanted_id}{_named_like(fields, wanted_name)}",
            "set AMOSYNC_RENTPROG_FIELD_ID to the id of the lead field holding the RentProg ID",
        )
    by_name = [f for f in fields if _norm(f.get("name")) == _norm(wanted_name)]
    if by_name:
        found_id = by_name[0].get("id")
        return CheckResult(
            "rentprog_field",
            "warn",
            f"found by name {wanted_name!r} (id {found_id}); a rename in amoCRM would break it",
            f"set AMOSYNC_RENTPROG_FIELD_ID={found_id}",
        )
    return CheckResult(
        "rentprog_field",
        "fail",
        f"no lead custom field named {wanted_name!r} among {len(fields)} fields",
        "create it in amoCRM (Settings → Fields → Leads), or set AMOSYNC_RENTPROG_FIELD_ID",
    )


def check_user_names(settings: Settings, facts: Facts) -> CheckResult:
    """Users are admin-only in amoCRM: without them the copy has no user names (a warning;
    everything else syncs)."""
    outcome = facts.users
    if outcome.kind == "skipped" or (outcome.error is None and outcome.value is None):
        return CheckResult("user_names", "skip", outcome.error or "skipped")
    if outcome.error is not None and "403" in outcome.error:
        return CheckResult(
            "user_names",
            "warn",
            "amoCRM refuses the user list (403): the token's user is not an account "
            "administrator, so deals show no user names (everything else syncs)",
            "authorise amosync as an administrator of the amoCRM account",
        )
    if outcome.error is not None:
        return CheckResult("user_names", "warn", outcome.error, _api_fix(settings, outcome))
    return CheckResult("user_names", "ok", "the user list is readable (names of users)")


# -- helpers ----------------------------------------------------------------------------


def _api_fix(settings: Settings, outcome: Outcome[Any]) -> str:
    if outcome.kind == "reauth":
        return _renew_fix(settings)
    if outcome.kind == "ip_blocked":
        return "wait for the block to pass (about 10 min); keep AMOSYNC_API_RATE_LIMIT ≤ 7"
    if outcome.kind == "paused":
        return "amoCRM asked for a pause (429); run `amosync doctor` again when it has passed"
    if outcome.kind == "unreachable":
        return "check AMOSYNC_AMOCRM_SUBDOMAIN / AMOSYNC_AMOCRM_BASE_URL and the network"
    if outcome.kind == "database":
        return "fix the database first (see above)"
    return "check the detail; the integration may lack admin rights or this plan's API access"


def _renew_fix(settings: Settings) -> str:
    if settings.amocrm_client_id:
        return "re-authorise: `amosync auth login` (or `amosync auth url` + `auth exchange`)"
    return (
        "generate a new long-lived token (integration → Keys and scopes) and set "
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN"
    )


def _named_like(fields: list[dict[str, Any]], name: str) -> str:
    like = [f for f in fields if _norm(f.get("name")) == _norm(name)]
    if not like:
        return ""
    return f"; a field named {name!r} has id {like[0].get('id')}"


def _norm(value: object) -> str:
    return value.strip().casefold() if isinstance(value, str) else ""
