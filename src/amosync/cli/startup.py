"""What `serve` and `worker` say about their configuration when they start.

A typo in a variable name or two competing tokens do not stop amosync, so they must at least
be said once, in the log, where the operator looks first. The log stays English and
machine-readable; when a person watches (readable log lines, not JSON), the same facts and
where to look are also said to them on stderr, in the CLI's language.
"""

from __future__ import annotations

import logging
import os

import typer

from amosync import __version__
from amosync.amocrm.token_info import token_choice
from amosync.l10n import N_, gettext_for
from amosync.l10n.cli import cli_language_now
from amosync.l10n.phrases import translate
from amosync.logs import writes_json
from amosync.settings import Settings
from amosync.settings_audit import unknown_variables

log = logging.getLogger("amosync.cli")

# One field once per text: the catalogue matches composed texts by their fields (phrases.py).
SERVING = N_(
    "amosync {version} listens on {url}: the status page is {page}, health {health}; "
    "Ctrl-C stops it."
)
WARNING = N_("warning: {what}")
WORKING = N_("amosync {version}: the worker processes stored events; Ctrl-C stops it.")
TOKEN = N_("amoCRM token: {statement}")


def startup_notes(settings: Settings, serving: str | None = None) -> None:
    """Log the configuration's notes; `serving`: the URL `serve` listens on (None: worker)."""
    unknown = unknown_variables(os.environ)
    for variable in unknown:
        log.warning(
            "unknown_setting",
            extra={
                "event": "unknown_setting",
                "variable": variable.name,
                "source": variable.source,
                "closest": variable.closest,
                "hint": variable.describe(),
            },
        )
    choice = token_choice(settings)
    log.info(
        "amocrm_token",
        extra={"event": "amocrm_token", "uses": choice.kind, "detail": choice.statement},
    )
    if choice.warning:
        log.warning(
            "amocrm_token_ambiguous",
            extra={"event": "amocrm_token_ambiguous", "hint": choice.warning},
        )
    if writes_json(settings.log_format):
        return  # a log system reads this output: the log lines above say it all
    lang = cli_language_now()
    _ = gettext_for(lang)
    if serving:
        typer.echo(
            _(SERVING).format(
                version=__version__, url=serving, page=f"{serving}/", health=f"{serving}/health"
            ),
            err=True,
        )
    else:
        typer.echo(_(WORKING).format(version=__version__), err=True)
    typer.echo(_(TOKEN).format(statement=translate(choice.statement, lang)), err=True)
    warnings = [v.describe() for v in unknown] + ([choice.warning] if choice.warning else [])
    for warning in warnings:
        typer.echo(_(WARNING).format(what=translate(warning, lang)), err=True)
