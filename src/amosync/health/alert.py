"""Is sync paused or stalled, and why? The status page's red banner, from the same checks as
`/health`, so the two never disagree.

The most fundamental failing check wins: storage before schema before the worker before
amoCRM before the backlog (a stopped worker also makes the backlog old; the worker is the
cause to name). Failed events and verification are not in the banner: sync goes on, and
the page lists them where they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from amosync.health.model import Check

# check name → the banner's reason key (web/i18n.py has `banner_<key>` and `fix_<key>`)
_REASONS = (
    ("database", "storage"),
    ("schema", "schema"),
    ("amocrm_pause", "paused"),
    ("amocrm_credentials", "credentials"),
    ("worker", "worker"),
    ("amocrm_api", "unreachable"),
    ("backlog", "backlog"),
    ("last_webhook", "silence"),
)


@dataclass(frozen=True)
class Alert:
    reason: str  # storage | schema | paused | credentials | worker | unreachable | …
    check: str  # the failing check's name
    detail: str  # its detail, as /health says it


def sync_alert(checks: dict[str, Check]) -> Alert | None:
    for name, reason in _REASONS:
        check = checks.get(name)
        if check is not None and not check.ok:
            if name == "worker" and "paused" in check.detail:
                reason = "paused"
            return Alert(reason, name, check.detail)
    return None
