"""Loading the compiled catalogue (`.mo`); Babel only extracts and compiles (scripts/l10n)."""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

LANGS = ("en", "ru")
DOMAIN = "amosync"
LOCALE_DIR = Path(__file__).parent / "locale"


def N_(message: str) -> str:
    """Marks `message` for extraction without translating it here (it is translated later)."""
    return message


@lru_cache(maxsize=4)
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of `lang`; English (the msgids themselves) for anything else."""
    if lang not in LANGS or lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def gettext_for(lang: str) -> Callable[[str], str]:
    catalogue = translations(lang)

    def _(message: str) -> str:
        # gettext("") answers the catalogue's header: an empty text stays empty.
        return catalogue.gettext(message) if message else message

    return _


def from_accept_language(header: str) -> str | None:
    """The supported language an `Accept-Language` header prefers most (ties: the one listed
    first); None when it names neither."""
    best, best_q = None, 0.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if primary in LANGS and q > best_q:
            best, best_q = primary, q
    return best
