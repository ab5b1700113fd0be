"""Words shown to a person, in English or Russian, and times in the reader's zone.

One gettext catalogue (`locale/ru/LC_MESSAGES/amosync.po`, compiled to `.mo` and shipped):
msgids are the English texts, so English needs no catalogue. Logs, `--json` output and
/health JSON stay English and UTC; only what a person reads goes through here.
"""

from amosync.l10n.catalog import LANGS, N_, gettext_for, translations
from amosync.l10n.cli import cli_gettext, cli_language, configure_cli

__all__ = [
    "LANGS",
    "N_",
    "cli_gettext",
    "cli_language",
    "configure_cli",
    "gettext_for",
    "translations",
]
