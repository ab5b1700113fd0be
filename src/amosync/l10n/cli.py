"""The CLI's language: AMOSYNC_LANG (`ru`/`en`), else the locale (LC_ALL, LC_MESSAGES, LANG),
else English. Read from the environment so that even a configuration error is in it."""

from __future__ import annotations

import os
from collections.abc import Callable

from amosync.l10n.catalog import LANGS, gettext_for

_chosen: str | None = None


def cli_language(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    asked = env.get("AMOSYNC_LANG", "").strip().lower()
    if asked in LANGS:
        return asked
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:  # the first one set decides, as in POSIX
            primary = value.split(".")[0].split("_")[0].lower()
            return primary if primary in LANGS else "en"
    return "en"


def configure_cli(lang: str | None) -> None:
    """Settings give AMOSYNC_LANG (also from `.env`); None: from the environment."""
    global _chosen
    _chosen = lang if lang in LANGS else None


def cli_language_now() -> str:
    """AMOSYNC_LANG from the settings once loaded, else from the environment."""
    return _chosen or cli_language()


def cli_gettext() -> Callable[[str], str]:
    return gettext_for(cli_language_now())


def _(message: str) -> str:
    """Translate one CLI message into the CLI's language."""
    return cli_gettext()(message)
