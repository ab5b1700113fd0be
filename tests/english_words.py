"""Latin words left in a Russian text that are not names or ids (the allow-list)."""

from __future__ import annotations

import re

# Names and abbreviations that stay as they are in Russian (docs/GLOSSARY.md, last line).
ALLOWED = {
    "amocrm", "rentprog", "amosync", "kommo", "id", "api", "ip", "dns", "url", "oauth",
    "http", "https", "utc", "json", "sqlite", "postgresql", "ru", "en", "msk", "cet", "eet",
    "localhost", "ctrl-c",
}  # fmt: skip
_IGNORED = re.compile(
    r"`[^`]*`"  # commands and options
    r"|https?://\S+"  # URLs
    r"|(?<!\w)/[\w/.-]+"  # paths
    r"|\b\d{3} \([^)]*\)"  # an HTTP code with amoCRM's own words for it
    r"|\(\d{3} [^)]*\)"  # the same inside parentheses: (401 Invalid user name or password)
    r"|\bAMOSYNC_\w+"  # setting names
    r"|--[\w-]+"  # options
    r"|\b\w+_\w+\b"  # ids
    r"|'[^'\n]*'"  # quoted values, such as an account or field name from amoCRM
    r"|(?<![\w.])\.\w[\w.]*"  # file names such as .env and .env.example
    r"|\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b"  # class names, such as the exception ConnectError
    r"|\b[A-Z]{2,}\d*\b"  # codes such as CODE, HTTP 503
    r"|\b\d+[smhd]\b"  # durations typed as options take them: 90d, 12h
)


def english_words(text: str, *names: str) -> list[str]:
    """Latin words of `text` beyond the allow-list and the given `names` (data, such as a
    subdomain)."""
    allowed = ALLOWED | {n.lower() for n in names}
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", _IGNORED.sub(" ", text))
    return sorted({w for w in words if w.lower() not in allowed})
