"""`AMOSYNC_*` variables that are not settings: a typo (`AMOSYNC_RENTPROG_FEILD_ID`) would
otherwise be ignored without a word, and amosync would run with the default.

Pure: given the environment and the `.env` lines, the unknown names with the closest known
setting (difflib). `serve`/`worker` log them at start-up, `amosync doctor` shows them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from amosync.l10n.catalog import N_
from amosync.settings import Settings

PREFIX = "AMOSYNC_"

# Read by something other than `Settings` on purpose: tests, benchmarks, scripts, compose.
NOT_SETTINGS = frozenset(
    {
        "AMOSYNC_TEST_PG_URL",  # tests/conftest.py: the PostgreSQL server for the test suite
        "AMOSYNC_BENCH_PG_URL",  # bench/: the PostgreSQL server for benchmarks
        "AMOSYNC_AUDIT_STRICT",  # scripts/audit
        "AMOSYNC_IMAGE_TAG",  # deploy/compose.yaml
        "AMOSYNC_HTTP_PORT",  # deploy/compose.yaml
    }
)


@dataclass(frozen=True)
class UnknownVariable:
    name: str
    source: str  # "environment" or the .env path
    closest: str | None  # the known setting it most likely meant

    def describe(self) -> str:
        guess = f"; did you mean {self.closest}?" if self.closest else ""
        return f"{self.name} (in {self.source}) is not an amosync setting and is ignored{guess}"


def known_variables() -> list[str]:
    return [PREFIX + name.upper() for name in Settings.model_fields]


def unknown_variables(
    environ: Mapping[str, str], env_file: Path | None = Path(".env")
) -> list[UnknownVariable]:
    """Unknown `AMOSYNC_*` names in `environ` and in `env_file` (as Settings reads it)."""
    known = known_variables()
    found: list[UnknownVariable] = []
    seen: set[str] = set()
    # N_: shown as "(in environment)", translated where a person reads it (l10n/phrases)
    sources: list[tuple[str, Iterable[str]]] = [(N_("environment"), environ)]
    if env_file is not None and env_file.is_file():
        sources.append((str(env_file), _env_file_names(env_file)))
    for source, names in sources:
        for raw in names:
            name = raw.upper()  # pydantic-settings matches names case-insensitively
            if not name.startswith(PREFIX) or name in seen:
                continue
            if name in known or name in NOT_SETTINGS:
                continue
            seen.add(name)
            found.append(UnknownVariable(raw, source, _closest(name, known)))
    return found


def _closest(name: str, known: list[str]) -> str | None:
    # Compared without the shared prefix, which would make every name look alike.
    tails = [k[len(PREFIX) :] for k in known]
    match = difflib.get_close_matches(name[len(PREFIX) :], tails, n=1, cutoff=0.6)
    return PREFIX + match[0] if match else None


def _env_file_names(path: Path) -> list[str]:
    from dotenv import dotenv_values  # pydantic-settings' own .env reader

    try:
        return [name for name in dotenv_values(path, encoding="utf-8") if name]
    except (OSError, UnicodeDecodeError):
        return []  # Settings itself reports an unreadable .env
