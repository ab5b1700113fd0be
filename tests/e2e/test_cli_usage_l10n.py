"""Usage errors (an unknown option, a bad value, a missing argument…) speak the CLI's language
(issue #22); in English they stay byte for byte what typer prints in its standalone mode.

Each kind is run in one child process per language through `amosync.cli.usage_l10n.run` on
the real command tree (what `amosync` runs), and on a small typer app for the kinds amosync's
own options cannot produce (a required option with a variable, choices, a pair, an abort, a
group called without its command). Two real `amosync` processes check the entry point.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli_help_l10n import ENTRY_POINT, _env
from tests.english_words import english_words

# amosync's own commands: args -> what they get wrong
AMOSYNC_KINDS: dict[str, list[str]] = {
    "no such option": ["serve", "--foo"],
    "no such option, possible ones": ["serve", "--prot"],
    "no such short option": ["serve", "-x"],
    "not an integer": ["serve", "--port", "x"],
    "not a number": ["auth", "login", "--timeout", "x"],
    "below the minimum": ["auth", "login", "--timeout", "0"],
    "above the maximum": ["auth", "login", "--port", "70000"],
    "missing argument": ["events", "show"],
    "bad argument": ["events", "show", "x"],
    "no such command": ["nosuch"],
    "no such command, did you mean": ["serv"],
    "extra argument": ["serve", "extra"],
    "option without its value": ["serve", "--port"],
    "flag given a value": ["--version=1"],
}
# the small app's commands (DEMO below)
DEMO_KINDS: dict[str, list[str]] = {
    "missing option with a variable": ["need"],
    "missing choice": ["pick"],
    "wrong choice": ["pick", "blue"],
    "option without both values": ["pair", "--point", "1"],
    "missing command": ["--verbose"],
    "aborted": ["stop"],
}
SHORT_OPTION = re.compile(r"(?<![\w-])-\w\b")  # -x: an option, as --foo is
# command names, and the small app's name, argument and choices
NAMES = (
    *("serve", "auth", "login", "events", "show"),
    *("demo", "need", "pick", "pair", "stop", "color", "red", "green"),
)

CHILD = """
import contextlib, io, json, sys
from typing import Annotated, Literal

import typer

from amosync.cli.help_l10n import help_language, localise
from amosync.cli.main import command
from amosync.cli.usage_l10n import run

demo = typer.Typer(rich_markup_mode=None)

@demo.callback()
def root(verbose: bool = False) -> None:
    pass

@demo.command()
def need(name: Annotated[str, typer.Option(envvar="DEMO_NAME")]) -> None:
    pass

@demo.command()
def pick(color: Literal["red", "green"]) -> None:
    pass

@demo.command()
def pair(point: Annotated[tuple[int, int], typer.Option()] = (0, 0)) -> None:
    pass

@demo.command()
def stop() -> None:
    raise typer.Abort()

mode, cases = sys.argv[1], json.loads(sys.argv[2])
lang = help_language()
shown = []
for tree, args in cases:
    cmd = command(lang) if tree == "amosync" else localise(typer.main.get_command(demo), lang)
    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if mode == "run":
                run(cmd, lang, args, prog_name=tree)
            else:  # what `amosync` did before: typer's standalone mode
                cmd.main(args=args, prog_name=tree)
        except SystemExit as done:
            code = done.code
    shown.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(shown))
"""

CASES = [["amosync", a] for a in AMOSYNC_KINDS.values()] + [
    ["demo", a] for a in DEMO_KINDS.values()
]
KINDS = [*AMOSYNC_KINDS, *DEMO_KINDS]


def _shown(mode: str, env: dict[str, str], cwd: Path) -> dict[str, tuple[int, str, str]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, json.dumps(CASES)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {kind: tuple(r) for kind, r in zip(KINDS, json.loads(done.stdout), strict=True)}


@pytest.fixture(scope="module")
def english(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    return _shown("run", _env(), tmp_path_factory.mktemp("en"))


@pytest.fixture(scope="module")
def russian(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str]]:
    return _shown("run", _env(AMOSYNC_LANG="ru"), tmp_path_factory.mktemp("ru"))


def test_english_is_what_typer_prints_itself(
    english: dict[str, tuple[int, str, str]], tmp_path: Path
) -> None:
    assert _shown("standalone", _env(), tmp_path) == english
    assert english["no such option"] == (
        2,
        "",
        "Usage: amosync serve [OPTIONS]\nTry 'amosync serve --help' for help.\n\n"
        "Error: No such option: --foo\n",
    )
    assert english["aborted"] == (1, "", "Aborted!\n")


@pytest.mark.parametrize("kind", KINDS)
def test_every_usage_error_is_russian(
    kind: str,
    russian: dict[str, tuple[int, str, str]],
    english: dict[str, tuple[int, str, str]],
) -> None:
    code, out, err = russian[kind]

    assert (code, out) == english[kind][:2]  # 2 (1 for an abort), nothing on stdout
    assert [] == english_words(SHORT_OPTION.sub(" ", err), *NAMES), err
    # the same lines as in English: the usage line, the hint, then the error
    assert len(err.splitlines()) == len(english[kind][2].splitlines()), err


def test_russian_words_and_values(russian: dict[str, tuple[int, str, str]]) -> None:
    said = {kind: err for kind, (_code, _out, err) in russian.items()}
    assert said["no such option"] == (
        "Использование: amosync serve [OPTIONS]\nСправка: 'amosync serve --help'.\n\n"
        "Ошибка: Нет такого параметра: --foo\n"
    )
    assert "Недопустимое значение '--port': нужно целое число\n" in said["not an integer"]
    assert "значение должно быть не меньше 1\n" in said["below the minimum"]  # not 1.0
    assert "не больше 65535" in said["above the maximum"]
    assert (
        "Нет такой команды: 'serv'. Может быть, 'serve'?" in said["no such command, did you mean"]
    )
    assert "(переменная окружения: 'DEMO_NAME')" in said["missing option with a variable"]
    assert "Прервано!\n" == said["aborted"]
    assert "'blue' — не одно из: 'red', 'green'." in said["wrong choice"]


@pytest.mark.parametrize(
    ("lang", "said"),
    [("en", "Error: No such option: --foo"), ("ru", "Ошибка: Нет такого параметра: --foo")],
)
def test_the_real_command(tmp_path: Path, lang: str, said: str) -> None:
    done = subprocess.run(
        [str(ENTRY_POINT), "serve", "--foo"],
        env=_env(AMOSYNC_LANG=lang),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 2 == done.returncode
    assert "" == done.stdout
    assert said in done.stderr.splitlines(), done.stderr
