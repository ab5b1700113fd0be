"""One health check's answer: a state, a sentence, and since when it has been so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from amosync.core.humanize import age

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """`state` is ok, warn (still healthy: something to look at) or fail (`/health` 503).

    `since`: when the observation the state rests on was made or began (the last API call,
    the oldest pending event, the first failed commit…); None when there is no such time."""

    state: str
    detail: str
    since: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.state != FAIL

    @classmethod
    def from_pair(cls, pair: tuple[bool, str], since: datetime | None = None) -> Check:
        """From the older `(ok, detail)` answers, where a detail starting with "warning"
        means ok with a warning (token expiry, subscription)."""
        ok, detail = pair
        state = FAIL if not ok else WARN if detail.startswith("warning") else OK
        return cls(state, detail, since)

    def age_seconds(self, now: datetime | None = None) -> float | None:
        if self.since is None:
            return None
        return max(((now or datetime.now(UTC)) - self.since).total_seconds(), 0.0)

    def since_text(self, now: datetime | None = None) -> str:
        """`12 s ago` style, or empty when there is no time."""
        seconds = self.age_seconds(now)
        return "" if seconds is None else f"{age(seconds)}"

    def as_json(self, now: datetime | None = None) -> dict[str, Any]:
        seconds = self.age_seconds(now)
        return {
            "ok": self.ok,
            "state": self.state,
            "detail": self.detail,
            "since": self.since.isoformat() if self.since else None,
            "age_seconds": None if seconds is None else round(seconds, 1),
        }


def worst(checks: dict[str, Check]) -> str:
    states = {c.state for c in checks.values()}
    return FAIL if FAIL in states else WARN if WARN in states else OK
