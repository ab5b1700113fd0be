"""What every command needs: settings loaded with readable errors, logging, exit codes.

Exit codes: 0 success, 1 the command ran and found a problem, 2 bad usage or configuration,
3 `worker --once` stopped because amoCRM refuses calls for now (worker/paused.py).
"""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError

from amosync.errors import ConfigError
from amosync.l10n.cli import _, cli_language_now, configure_cli
from amosync.l10n.phrases import translate
from amosync.l10n.zone import configure_zone
from amosync.logs import configure_logging
from amosync.settings import Settings


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` (in AMOSYNC_LANG when the catalogue knows it) and exit `code`."""
    typer.echo(f"amosync: {translate(message, cli_language_now())}", err=True)
    raise typer.Exit(code)


def load_settings(**overrides: object) -> Settings:
    """Settings from env and `.env`, with CLI overrides; a bad value exits 2 naming the variable."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "AMOSYNC_" + "_".join(str(p) for p in err["loc"]).upper()
            reason = err["msg"].removeprefix("Value error, ")
            lines.append(f"{name}: {translate(reason, cli_language_now())}")
        # One bad value is one line (what a log line or a systemd status shows whole).
        sep = " " if len(lines) == 1 else "\n  "
        fail(_("invalid configuration:") + sep + sep.join(lines))
    configure_cli(settings.lang)
    configure_zone(settings.timezone)
    try:
        settings.sqlite_path  # noqa: B018 - validates the database URL early
    except ConfigError as exc:
        fail(str(exc))
    return settings


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
