"""`--help` of every command speaks the CLI's language (issue #22); English stays the default.

Every command's help is taken in one child process through the real entry point's command
tree (`amosync.cli.main.command`, what `amosync` runs), so the language is chosen as for a
person: AMOSYNC_LANG, `.env`, else the locale. Two real `amosync … --help` processes check
the entry point itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.english_words import english_words

ENTRY_POINT = Path(sys.executable).with_name("amosync")  # the installed `amosync` command

# Every command path's `--help`, printed as one JSON object {path: help}.
ALL_HELP = """
import contextlib, io, json
from amosync.cli.main import command

root = command()

def paths(cmd, prefix):
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from paths(sub, [*prefix, name])

shown = {}
for path in paths(root, []):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            root.main(args=[*path, "--help"], prog_name="amosync", standalone_mode=False)
        except SystemExit:
            pass
    shown[" ".join(path)] = out.getvalue()
print(json.dumps(shown))
"""

# What help shows besides words: option types (`<str>`, `<int range>`), ranges (`x>=1`) and
# default values (`[по умолчанию: contacts,companies,leads]`, `wait` of `--wait/--no-wait`).
# Arguments are named in the usage line (`{code}`) and at the start of their row.
_NOT_WORDS = re.compile(
    r"<[\w \[\]]+>|\d*<?=?x[<>]=?\d+|по умолчанию:[^;\]]*|\{\w+\}|^  \w+(?= <)", re.M
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMOSYNC_", "LC_"))}
    env["LANG"] = "C.UTF-8"
    env["COLUMNS"] = "100"
    return {**env, **extra}


def _all_help(env: dict[str, str], cwd: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", ALL_HELP],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    shown: dict[str, str] = json.loads(done.stdout)
    return shown


def test_every_commands_help_is_russian_with_amosync_lang(tmp_path: Path) -> None:
    shown = _all_help(_env(AMOSYNC_LANG="ru"), tmp_path)

    assert len(shown) > 30, sorted(shown)  # every group and command, sub-commands included
    names = {name for path in shown for name in path.split()}  # command names are names
    english = {
        path: words
        for path, text in shown.items()
        if (words := english_words(_NOT_WORDS.sub(" ", text), *names))
    }
    assert {} == english
    assert all("Использование: amosync" in text for text in shown.values()), shown[""]
    assert "Параметры:" in shown["serve"]
    assert "Команды:" in shown[""]
    assert "Показать эту справку и выйти." in shown["auth login"]
    assert "[по умолчанию: 300.0; x>=1]" in " ".join(shown["auth login"].split())


def test_english_stays_the_default(tmp_path: Path) -> None:
    shown = _all_help(_env(), tmp_path)

    assert "Usage: amosync serve [OPTIONS]" in shown["serve"]
    assert "Receive webhooks" in shown["serve"]
    # click's plain help keeps the setting's name (rich markup used to swallow `[env: …]`)
    assert "[env: AMOSYNC_PORT]" in shown["serve"]
    assert "Show this message and exit." in shown[""]


@pytest.mark.parametrize(
    ("how", "dotenv"),
    [({"LANG": "ru_RU.UTF-8"}, ""), ({}, "AMOSYNC_LANG=ru\n")],
    ids=["locale", "dotenv"],
)
def test_the_real_command_follows_the_locale_and_dotenv(
    tmp_path: Path, how: dict[str, str], dotenv: str
) -> None:
    if dotenv:
        (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    done = subprocess.run(
        [str(ENTRY_POINT), "webhooks", "register", "--help"],
        env=_env(**how),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 0 == done.returncode, done.stderr
    assert "Использование: amosync webhooks register" in done.stdout, done.stdout
    assert [] == english_words(_NOT_WORDS.sub(" ", done.stdout), "webhooks", "register")
