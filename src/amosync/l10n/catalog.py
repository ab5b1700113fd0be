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
