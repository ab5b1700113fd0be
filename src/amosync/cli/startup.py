"""What `serve` and `worker` say about their configuration when they start.

A typo in a variable name or two competing tokens do not stop amosync, so they must at least
be said once, in the log, where the operator looks first.
"""

from __future__ import annotations

import logging
import os

from amosync.amocrm.token_info import token_choice
from amosync.settings import Settings
from amosync.settings_audit import unknown_variables

log = logging.getLogger("amosync.cli")


def startup_notes(settings: Settings) -> None:
    for unknown in unknown_variables(os.environ):
        log.warning(
            "unknown_setting",
            extra={
                "event": "unknown_setting",
                "variable": unknown.name,
                "source": unknown.source,
                "closest": unknown.closest,
                "hint": unknown.describe(),
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
