"""When the amoCRM token in use expires: one answer for `/health`, `status`, `doctor`, metrics.

Long-lived tokens are JWTs: their expiry is the `exp` claim, chosen when the token was
created (1 day to 5 years). With OAuth the access token renews itself every day; what can
run out is the refresh token, 3 months after the last refresh (the keep-alive job keeps
that far away). So `expires_at` means "access is lost unless someone acts by then".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from amosync.amocrm.jwt_claims import token_expires_at
from amosync.amocrm.token_store import TokenStore
from amosync.db.database import Database
from amosync.settings import Settings

TokenKind = Literal["long_lived", "oauth"]


@dataclass(frozen=True)
class TokenExpiry:
    kind: TokenKind
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None

    @property
    def expires_at(self) -> datetime | None:
        """When access is lost unless someone acts; None when the token does not say."""
        if self.kind == "oauth" and self.refresh_expires_at is not None:
            return self.refresh_expires_at
        return self.access_expires_at

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Seconds until `expires_at` (negative once expired); None when unknown."""
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()

    def is_expired(self, now: datetime | None = None) -> bool:
        left = self.seconds_left(now)
        return left is not None and left <= 0

    def expires_within(self, days: float, now: datetime | None = None) -> bool:
        """True when access is lost within `days` days — or already is."""
        left = self.seconds_left(now)
        return left is not None and left <= timedelta(days=days).total_seconds()

    def needs_warning(self, settings: Settings, now: datetime | None = None) -> bool:
        """True within `AMOSYNC_TOKEN_WARN_DAYS` of `expires_at` (expired tokens included)."""
        return self.expires_within(settings.token_warn_days, now)

    def as_json(self, settings: Settings, now: datetime | None = None) -> dict[str, object]:
        """For `status --json` and other machine-readable reports (ISO dates or null)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "kind": self.kind,
            "access_expires_at": iso(self.access_expires_at),
            "refresh_expires_at": iso(self.refresh_expires_at),
            "expires_at": iso(self.expires_at),
            "expired": self.is_expired(now),
            "warning": self.needs_warning(settings, now),
        }

    def describe(self, now: datetime | None = None) -> str:
        """One line for humans, e.g. `long-lived token expires 2027-01-01 (in 38 days)`."""
        what = "long-lived token" if self.kind == "long_lived" else "OAuth refresh token"
        left = self.seconds_left(now)
        if self.expires_at is None or left is None:
            return f"{what}: expiry unknown"
        when = self.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        if left <= 0:
            return f"{what} expired {when}"
        days = left / 86400
        span = f"{days:.0f} days" if days >= 2 else f"{left / 3600:.0f} h"
        return f"{what} expires {when} (in {span})"


def configured_kind(settings: Settings) -> TokenKind | None:
    """Which token the settings ask for: OAuth when a client id is set, else a long-lived
    token when one is set, else None (a stored OAuth row, if any, is then used)."""
    if settings.amocrm_client_id:
        return "oauth"
    if settings.amocrm_long_lived_token is not None:
        return "long_lived"
    return None


async def token_expiry(settings: Settings, db: Database) -> TokenExpiry | None:
    """The expiry of the token amosync uses, or None when it has none yet.

    Reads `amocrm_oauth_tokens` for OAuth (database errors propagate to the caller).
    A long-lived token that is not a readable JWT gives a `TokenExpiry` with no dates.
    """
    kind = configured_kind(settings)
    if kind == "long_lived" and settings.amocrm_long_lived_token is not None:
        expires = token_expires_at(settings.amocrm_long_lived_token.get_secret_value())
        return TokenExpiry("long_lived", expires, None)
    if settings.api_base_url is None:
        return None
    row = await TokenStore(db, settings.api_base_url).load()
    if row is None:
        return None
    return TokenExpiry("oauth", row.expires_at, row.refresh_expires_at)


# When both are configured OAuth wins (it always has; changing that would silently switch
# running installations to another token). Said wherever the choice shows.
BOTH_CONFIGURED = (
    "both AMOSYNC_AMOCRM_CLIENT_ID (OAuth) and AMOSYNC_AMOCRM_LONG_LIVED_TOKEN are set: "
    "OAuth is used and the long-lived token is ignored; unset the one you do not want"
)


@dataclass(frozen=True)
class TokenChoice:
    kind: TokenKind | None
    statement: str  # which token amosync uses and why, one line
    warning: str | None  # set when the configuration is ambiguous


def token_choice(settings: Settings) -> TokenChoice:
    """Which token the settings make amosync use, in words (serve, `auth status`, doctor)."""
    kind = configured_kind(settings)
    if kind == "oauth":
        both = settings.amocrm_long_lived_token is not None
        return TokenChoice(
            kind,
            "OAuth (AMOSYNC_AMOCRM_CLIENT_ID is set; tokens from `amosync auth login`)",
            BOTH_CONFIGURED if both else None,
        )
    if kind == "long_lived":
        return TokenChoice(kind, "the long-lived token (AMOSYNC_AMOCRM_LONG_LIVED_TOKEN)", None)
    return TokenChoice(
        None, "no token configured (OAuth tokens stored by `amosync auth`, if any)", None
    )


def missing_token_hint(settings: Settings) -> str:
    """What to do when amosync has no token at all."""
    if configured_kind(settings) == "oauth":
        hint = (
            "no OAuth tokens stored yet: run `amosync auth url` and "
            "`amosync auth exchange CODE` (or `amosync auth login`)"
        )
        if settings.amocrm_long_lived_token is not None:
            hint += f" ({BOTH_CONFIGURED})"
        return hint
    return (
        "set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN, or set AMOSYNC_AMOCRM_CLIENT_ID (with the "
        "secret and redirect URI) and run `amosync auth login`"
    )


def expiry_check(
    settings: Settings, expiry: TokenExpiry | None, now: datetime | None = None
) -> tuple[bool, str] | None:
    """(ok, detail) for `/health` and `doctor`: fails once expired, warns (still ok) within
    `AMOSYNC_TOKEN_WARN_DAYS`; None when there is no token or its expiry is unknown."""
    if expiry is None or expiry.expires_at is None:
        return None
    renew = (
        "create a new long-lived token and set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN"
        if expiry.kind == "long_lived"
        else "re-authorise with `amosync auth login` (or `auth url` + `auth exchange CODE`)"
    )
    if expiry.is_expired(now):
        return False, f"{expiry.describe(now)}: {renew}"
    if expiry.needs_warning(settings, now):
        return True, f"warning: {expiry.describe(now)}: {renew}"
    return True, expiry.describe(now)
