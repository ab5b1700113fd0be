"""`doctor`'s verdicts from gathered facts: each broken item fails with its own fix."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amosync.amocrm.token_info import TokenExpiry
from amosync.amocrm.webhooks import SUBSCRIBED_SETTINGS, Subscription, our_destination
from amosync.doctor.checks import (
    CheckResult,
    EventFacts,
    Facts,
    Outcome,
    ServiceAnswer,
    failed,
    run_checks,
)
from amosync.settings import Settings

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HEAD = "0003"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "amocrm_subdomain": "example",
        "amocrm_long_lived_token": "token",
        "webhook_secret": "0123456789abcdef",
        "public_url": "https://sync.example.com",
        "rentprog_field_id": 700001,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def ours(
    s: Settings, *, disabled: bool = False, events: tuple[str, ...] = SUBSCRIBED_SETTINGS
) -> Subscription:
    destination = our_destination(s)
    assert destination is not None
    return Subscription(id=1, destination=destination, disabled=disabled, settings=events)


def healthy(s: Settings) -> Facts:
    return Facts(
        now=NOW,
        database=Outcome(True),
        revision=Outcome(HEAD),
        head=HEAD,
        account=Outcome({"id": 31000001, "name": "Prokat", "subdomain": "example"}),
        token=Outcome(TokenExpiry("long_lived", NOW + timedelta(days=365), None)),
        subscriptions=Outcome([ours(s)]),
        service=Outcome(ServiceAnswer("http://127.0.0.1:3000/health", 200, {"status": "ok"})),
        events=Outcome(EventFacts(NOW - timedelta(minutes=3), 0)),
        lead_fields=Outcome([{"id": 700001, "name": "RentProg ID"}]),
        users=Outcome(1),
    )


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_everything_in_place_passes_every_check() -> None:
    """A complete setup: twelve checks, all ✓."""
    s = settings()

    results = run_checks(s, healthy(s))

    assert ["ok"] * 12 == [r.status for r in results]
    assert [
        "settings",
        "unknown_variables",
        "token_choice",
        "database",
        "schema",
        "token",
        "token_expiry",
        "webhook",
        "service",
        "events",
        "rentprog_field",
        "user_names",
    ] == [r.name for r in results]


def test_user_list_refused_is_a_warning() -> None:
    """A non-admin token: amoCRM answers 403 on /users, a warning (no user names), not ✗."""
    s = settings()
    facts = replace(
        healthy(s),
        users=Outcome(error="GET /api/v4/users: amoCRM answered 403", kind="rejected"),
    )

    result = by_name(run_checks(s, facts))["user_names"]

    assert "warn" == result.status
    assert "not an account administrator" in result.detail


REAUTH = Outcome[Any](error="amoCRM refused the token (401)", kind="reauth")
BLOCKED = Outcome[Any](error="requests from this IP are blocked", kind="ip_blocked")
EXPIRED = TokenExpiry("long_lived", NOW - timedelta(days=1), None)
NO_SERVICE = Outcome[Any](error="http://127.0.0.1:3000/health does not answer", kind="unreachable")
WRONG_FIELD = [{"id": 1, "name": "RentProg ID"}]
CASES = [
    (
        {"database": Outcome(error="refused", kind="database")},
        "database",
        "refused",
        "DATABASE_URL",
    ),
    ({"revision": Outcome("0002")}, "schema", "at 0002, expected 0003", "amosync migrate"),
    ({"revision": Outcome(None)}, "schema", "not migrated", "amosync migrate"),
    ({"account": REAUTH}, "token", "401", "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN"),
    ({"account": BLOCKED}, "token", "blocked", "wait"),
    ({"token": Outcome(EXPIRED)}, "token_expiry", "expired", "Keys and scopes"),
    ({"subscriptions": Outcome([])}, "webhook", "not subscribed", "amosync webhooks register"),
    ({"service": NO_SERVICE}, "service", "does not answer", "amosync serve"),
    ({"events": Outcome(EventFacts(None, 0))}, "events", "no webhook has arrived", "test deal"),
    (
        {"lead_fields": Outcome(WRONG_FIELD)},
        "rentprog_field",
        "named 'RentProg ID' has id 1",
        "_ID",
    ),
]


@pytest.mark.parametrize(("broken", "name", "in_detail", "in_fix"), CASES)
def test_each_broken_item_fails_alone_with_its_fix(
    broken: dict[str, Any], name: str, in_detail: str, in_fix: str
) -> None:
    """One broken fact fails exactly its own check, with a detail and a one-line fix."""
    s = settings()

    results = run_checks(s, replace(healthy(s), **broken))

    assert [name] == [r.name for r in failed(results)]
    result = by_name(results)[name]
    assert in_detail in result.detail
    assert in_fix in (result.fix or "")


def test_disabled_webhook_fails_with_how_to_re_enable() -> None:
    """A subscription amoCRM disabled fails; the fix says to make it reachable, re-register."""
    s = settings()

    result = by_name(
        run_checks(s, replace(healthy(s), subscriptions=Outcome([ours(s, disabled=True)])))
    )["webhook"]

    assert "fail" == result.status
    assert "DISABLED" in result.detail
    assert "https://sync.example.com/amocrm/…" in (result.fix or "")
    assert "amosync webhooks register" in (result.fix or "")
    assert "0123456789abcdef" not in result.detail + (result.fix or "")


def test_incomplete_settings_name_every_missing_variable() -> None:
    """No subdomain, token, secret or public URL: the settings check lists them all."""
    s = Settings(_env_file=None)

    result = by_name(run_checks(s, healthy(settings())))

    assert "fail" == result["settings"].status
    for name in (
        "AMOSYNC_AMOCRM_SUBDOMAIN",
        "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN",
        "AMOSYNC_WEBHOOK_SECRET",
        "AMOSYNC_PUBLIC_URL",
    ):
        assert name in result["settings"].detail
    assert "skip" == result["webhook"].status


def test_oauth_settings_need_all_three_values_and_stored_tokens() -> None:
    """OAuth without a secret is incomplete; with no stored tokens the fix is `auth login`."""
    s = settings(
        amocrm_long_lived_token=None,
        amocrm_client_id="cid",
        amocrm_redirect_uri="https://x.example.com/cb",
    )

    result = by_name(run_checks(s, replace(healthy(s), token=Outcome(None))))

    assert "AMOSYNC_AMOCRM_CLIENT_SECRET" == result["settings"].detail.removeprefix("missing: ")
    assert "fail" == result["token_expiry"].status
    assert "amosync auth login" in (result["token_expiry"].fix or "")


def test_warnings_do_not_fail() -> None:
    """Token expiring soon, missing events, field found only by name, quiet account: warnings."""
    s = settings(rentprog_field_id=None)
    facts = replace(
        healthy(s),
        token=Outcome(TokenExpiry("long_lived", NOW + timedelta(days=3), None)),
        subscriptions=Outcome([ours(s, events=("add_lead", "update_lead"))]),
        events=Outcome(EventFacts(NOW - timedelta(days=3), 0)),
        lead_fields=Outcome([{"id": 700001, "name": " rentprog id "}]),
    )

    results = by_name(run_checks(s, facts))

    assert [] == failed(list(results.values()))
    assert {"token_expiry", "webhook", "events", "rentprog_field"} == {
        n for n, r in results.items() if r.status == "warn"
    }
    assert "set AMOSYNC_RENTPROG_FIELD_ID=700001" == results["rentprog_field"].fix
    assert "status_lead" in results["webhook"].detail


def test_service_answering_503_names_its_failing_checks() -> None:
    """The service runs but its /health fails: the failing checks are named."""
    s = settings()
    body = {
        "status": "failing",
        "checks": {
            "worker": {"ok": False, "detail": "no worker"},
            "database": {"ok": True, "detail": "reachable"},
        },
    }

    result = by_name(
        run_checks(
            s, replace(healthy(s), service=Outcome(ServiceAnswer("http://h/health", 503, body)))
        )
    )["service"]

    assert ("fail", "http://h/health answers 503; failing: worker (no worker)") == (
        result.status,
        result.detail,
    )


def test_api_checks_after_a_refused_token_are_skipped_not_failed() -> None:
    """When the token is refused, the webhook and field checks are skipped, not failed too."""
    s = settings()
    skipped: Outcome[Any] = Outcome.skipped("needs a working API connection")
    facts = replace(
        healthy(s),
        account=Outcome(error="401", kind="reauth"),
        subscriptions=skipped,
        lead_fields=skipped,
    )

    results = run_checks(s, facts)

    assert ["token"] == [r.name for r in failed(results)]
    assert {"webhook": "skip", "rentprog_field": "skip"} == {
        r.name: r.status for r in results if r.name in ("webhook", "rentprog_field")
    }


def test_token_of_another_account_fails() -> None:
    """AMOSYNC_AMOCRM_ACCOUNT_ID set to another account than the token's: the token check fails."""
    s = settings(amocrm_account_id=42)

    result = by_name(run_checks(s, healthy(s)))["token"]

    assert "fail" == result.status
    assert "not to AMOSYNC_AMOCRM_ACCOUNT_ID=42" in result.detail


def test_webhook_silence_setting_warns_about_a_shorter_silence() -> None:
    """By default an hour without webhooks is a quiet account; with
    AMOSYNC_HEALTH_WEBHOOK_SILENCE=1800 doctor warns, naming the setting."""
    default = settings()
    tuned = settings(health_webhook_silence=1800)
    hour_quiet = Outcome(EventFacts(NOW - timedelta(hours=1), 0))

    quiet = by_name(run_checks(default, replace(healthy(default), events=hour_quiet)))
    silent = by_name(run_checks(tuned, replace(healthy(tuned), events=hour_quiet)))

    assert "ok" == quiet["events"].status
    assert "warn" == silent["events"].status
    assert "AMOSYNC_HEALTH_WEBHOOK_SILENCE" in silent["events"].detail
