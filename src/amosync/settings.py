"""The one list of knobs. Every field is an `AMOSYNC_*` env var (or a line in `.env`).

The settings table in docs/CONFIGURATION.md is checked against this class by a test, so a
new setting is documented here, in its `description`, and in that table's row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amosync.core.backoff import MAX_ATTEMPTS, MAX_RETRY_AFTER
from amosync.core.field_columns import FieldColumn, parse_field_columns
from amosync.core.mapping import RentProgField

# Seconds amoCRM's timestamps may run ahead of the database clock (`max_clock_skew`).
DEFAULT_MAX_CLOCK_SKEW = 300.0


class Settings(BaseSettings):
    """amosync configuration, read from the environment and an optional `.env` file."""

    model_config = SettingsConfigDict(
        env_prefix="AMOSYNC_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    host: str = Field(
        default="127.0.0.1",
        description="Address `serve` listens on. Use 0.0.0.0 behind a reverse proxy or in a "
        "container.",
    )
    port: int = Field(default=3000, ge=1, le=65535, description="Port `serve` listens on.")
    database_url: str = Field(
        default="sqlite:///./amosync.db",
        description="Where events, deals and contacts live. SQLite file by default; "
        "PostgreSQL in production: `postgresql://user:pass@host/db`.",
    )
    amocrm_subdomain: str | None = Field(
        default=None,
        description="Your account's subdomain (`example` for example.amocrm.ru). Also used to "
        "reject webhooks from another account.",
    )
    amocrm_base_url: str | None = Field(
        default=None,
        description="Full API base URL, overriding the subdomain (Kommo: "
        "`https://example.kommo.com`; tests: the fake server).",
    )
    amocrm_account_id: int | None = Field(
        default=None,
        description="Numeric account id; when set, webhooks naming another `account[id]` are "
        "rejected.",
    )
    amocrm_long_lived_token: SecretStr | None = Field(
        default=None,
        description="Long-lived token from your private integration (Keys and scopes tab).",
    )
    amocrm_client_id: str | None = Field(
        default=None,
        description="OAuth: integration ID of your external integration (instead of a "
        "long-lived token; see `amosync auth`).",
    )
    amocrm_client_secret: SecretStr | None = Field(
        default=None, description="OAuth: the integration's secret key."
    )
    amocrm_redirect_uri: str | None = Field(
        default=None,
        description="OAuth: the redirect URI exactly as entered in the integration's settings.",
    )
    public_url: str | None = Field(
        default=None,
        description="Public HTTPS base URL amoCRM reaches this service at "
        "(`https://sync.example.com`); used by `webhooks register` and `doctor`.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret path segment: amoCRM posts to `/amocrm/<secret>`. Without it the "
        "unprotected `/amocrm` is served and a warning is logged. At least 16 characters "
        "(`openssl rand -hex 16`); a placeholder such as `CHANGE-ME` is refused.",
    )
    rentprog_field_id: int | None = Field(
        default=None,
        description="Id of the lead custom field that holds the RentProg ID (preferred).",
    )
    rentprog_field_name: str = Field(
        default="RentProg ID",
        description="Name of that field, matched case-insensitively when the id is not set.",
    )
    deal_field_columns: str | None = Field(
        default=None,
        description="Deal custom fields as columns of the view `amocrm_deals_wide`: "
        "`alias:field id,…` (`rental_start:123456,car:234567`), one typed column per alias "
        "beside every column of `amocrm_deals_named`. Aliases are lower-case SQL names; the "
        "view is recreated by `migrate` and `serve` when this changes, dropped when unset.",
    )
    api_rate_limit: float = Field(
        default=7.0,
        gt=0,
        le=50,
        description=(
            "Most amoCRM API requests per second all processes on this database send "
            "together (amoCRM allows 7)."
        ),
    )
    api_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for one amoCRM API response."
    )
    api_max_answer_bytes: int = Field(
        default=33_554_432,
        ge=65_536,
        description="Largest amoCRM API answer read (bytes, decoded); a larger one is refused "
        "while it streams in, and the worker asks for fewer entities until the one that is too "
        "large alone fails its events.",
    )
    webhook_max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Largest webhook body accepted (bytes); larger → 413."
    )
    worker_batch_size: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="Events one worker takes per batch (collapsed to distinct entities); "
        "on SQLite they are claimed and settled 250 rows per transaction.",
    )
    worker_linger: float = Field(
        default=0.3,
        ge=0,
        description="Seconds the worker waits for more events before fetching, so a burst "
        "about many deals costs one call per 250 deals.",
    )
    worker_poll_interval: float = Field(
        default=0.2, gt=0, description="Seconds the worker sleeps when there is nothing to do."
    )
    worker_lease_seconds: int = Field(
        default=20,
        ge=10,
        description="How long a claimed event stays hidden from other workers unless its "
        "worker renews the claim (every heartbeat, 5 s, while it holds the event); a "
        "crashed worker's events are picked up again within this.",
    )
    max_attempts: int = Field(
        default=MAX_ATTEMPTS,
        ge=1,
        description="Attempts before an event is marked `failed` (with the default delays: "
        "about 6 h of retrying).",
    )
    retry_base_delay: float = Field(
        default=5.0, gt=0, description="First retry delay in seconds; doubles per attempt."
    )
    retry_max_delay: float = Field(
        default=3600.0, gt=0, description="Longest delay between two attempts, seconds."
    )
    max_retry_after: float = Field(
        default=MAX_RETRY_AFTER,
        gt=0,
        le=86_400,
        description="Longest pause a 429's `retry_after` (or `Retry-After`) may impose on "
        "every process, seconds; larger, infinite or far-future values are cut to this.",
    )
    ip_block_cooldown: float = Field(
        default=600.0,
        gt=0,
        description="Seconds to stop calling amoCRM after a 403 (IP block).",
    )
    event_retention_days: float = Field(
        default=30.0,
        gt=0,
        le=36_500,
        description="Done and ignored webhook events older than this many days are deleted "
        "by the worker (failed ones are kept until retried); see `amosync events prune`.",
    )
    health_max_backlog_age: float = Field(
        default=600.0,
        gt=0,
        description="`/health` fails when the oldest pending event is older than this (seconds).",
    )
    health_failed_window: float = Field(
        default=86400.0,
        gt=0,
        description="`/health` fails while events that became `failed` within this many "
        "seconds are still failed (retry or resolve them).",
    )
    health_webhook_silence: float = Field(
        default=0.0,
        ge=0,
        description="`/health` fails (and `doctor` warns) when no webhook from amoCRM arrived "
        "for this many seconds; 0 turns it off (a quiet account is not an error).",
    )
    token_refresh_margin: float = Field(
        default=900.0,
        gt=0,
        description="OAuth: refresh the access token this many seconds before it expires.",
    )
    token_keepalive_days: float = Field(
        default=30.0,
        gt=0,
        le=80,
        description="OAuth: refresh at least this often, so an idle account's refresh token "
        "(dead after 3 months unused) never expires.",
    )
    token_warn_days: float = Field(
        default=14.0,
        ge=0,
        description="`/health`, `status` and `doctor` warn when a token expires within this "
        "many days.",
    )
    reconcile_interval: float = Field(
        default=600.0,
        ge=0,
        description="Seconds between catch-up runs that fetch what changed since the last "
        "one (webhooks can be lost); 0 turns it off.",
    )
    reconcile_overlap: float = Field(
        default=300.0,
        ge=0,
        description="Seconds each catch-up run reaches back before its watermark, for clock "
        "skew and late commits in amoCRM.",
    )
    max_clock_skew: float = Field(
        default=DEFAULT_MAX_CLOCK_SKEW,
        ge=0,
        le=86_400,
        description="Seconds a timestamp from amoCRM may be ahead of the database clock. A "
        "later `updated_at`, `created_at` or `closed_at` is never stored (it would win over "
        "every real change): the event is retried, then fails with the reason.",
    )
    api_budget_per_hour: int = Field(
        default=120,
        ge=0,
        description="Most API requests per hour that catch-up and backfill may spend; "
        "webhook-driven fetches are not capped by it and always come first.",
    )
    reference_interval: float = Field(
        default=3600.0,
        ge=0,
        description="Seconds between refreshes of pipelines, stages, users, custom-field "
        "definitions and loss reasons (about 6 API requests each, inside "
        "AMOSYNC_API_BUDGET_PER_HOUR); sooner, at most every 5 minutes, when a stored deal "
        "or contact names one not known yet; 0 turns it off.",
    )
    verify_calls_per_hour: int = Field(
        default=10,
        ge=0,
        description="API requests per hour the worker's background verification may spend "
        "(250 stored deals or contacts compared with amoCRM per request, oldest-verified "
        "first; inside AMOSYNC_API_BUDGET_PER_HOUR); 0 turns it off.",
    )
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the read API and login secret for the status page. "
        "Without it they are served on loopback only. At least 16 characters "
        "(`openssl rand -hex 16`); a placeholder such as `CHANGE-ME` is refused.",
    )
    allow_shared_db_file: bool = Field(
        default=False,
        description="Keep a SQLite database file that other users may read (it holds the "
        "amoCRM tokens). Off: such a file is made 0600 at start-up, or refused when another "
        "user owns it.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="`auto`: readable on a terminal, JSON lines otherwise.",
    )
    lang: Literal["ru", "en"] | None = Field(
        default=None,
        description="Language of the CLI's output for people (`ru` or `en`), `--help` and the "
        "`auth login` browser tab included; unset: from the locale (LC_ALL, LC_MESSAGES, "
        "LANG), else English. Logs and `--json` stay English; the status page follows "
        "`?lang=` and the browser.",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone (e.g. `Europe/Moscow`) of every time shown to a person "
        "(status page, CLI tables, `doctor`); unset: this machine's zone. JSON, logs and the "
        "database stay UTC.",
    )

    @field_validator("amocrm_subdomain")
    @classmethod
    def _subdomain_is_bare(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not value or "." in value or "/" in value:
            raise ValueError(
                "give only the subdomain (`example` for example.amocrm.ru); "
                "use AMOSYNC_AMOCRM_BASE_URL for a full URL"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, value: str | None) -> str | None:
        from amosync.l10n.zone import parse_zone  # local: see sqlite_path

        if value is None or not value.strip():
            return None
        parse_zone(value)  # raises ValueError (UnknownZoneError) naming the problem
        return value.strip()

    @field_validator("webhook_secret", "admin_token")
    @classmethod
    def _secret_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        from amosync.secret_rules import secret_problem  # local: see sqlite_path

        problem = secret_problem(value.get_secret_value()) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("deal_field_columns")
    @classmethod
    def _field_columns_parse(cls, value: str | None) -> str | None:
        parse_field_columns(value)  # raises ValueError naming the first bad alias or id
        return value

    @field_validator("amocrm_base_url", "public_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a local fake)")
        return value

    @property
    def api_base_url(self) -> str | None:
        """The amoCRM host to call, or None when neither subdomain nor base URL is set."""
        if self.amocrm_base_url:
            return self.amocrm_base_url
        if self.amocrm_subdomain:
            return f"https://{self.amocrm_subdomain}.amocrm.ru"
        return None

    @property
    def webhook_secret_text(self) -> str | None:
        """The webhook secret itself (None: not set); the field keeps it out of reprs."""
        return self.webhook_secret.get_secret_value() if self.webhook_secret else None

    @property
    def rentprog_field(self) -> RentProgField:
        """Where a deal's RentProg ID is read from (field id, else field name)."""
        return RentProgField(self.rentprog_field_id, self.rentprog_field_name)

    @property
    def deal_field_column_list(self) -> tuple[FieldColumn, ...]:
        """The aliases of `amocrm_deals_wide`, in the order given (empty: no view)."""
        return parse_field_columns(self.deal_field_columns)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file when the database is SQLite on disk, else None."""
        from amosync.db.urls import sqlite_file  # local: settings must stay import-light

        return sqlite_file(self.database_url)
