"""`--help` in the CLI's language: every help text translated once the command tree is built.

The English texts stay where they are written (typer options' `help=`, command docstrings,
Typer groups' `help=`) and are the msgids; `localise` walks the click tree that typer built
and replaces each text by its translation, so there is no second copy of any string.
`help_texts` lists the same texts for scripts/l10n (which adds them to the catalogue) and for
tests/unit/test_l10n_catalogue.py (which fails while one lacks Russian).

typer's own words (`Options`, `Commands`, `default: …`) come from the stdlib's global
gettext, whose language follows LANGUAGE/LANG and never AMOSYNC_LANG: `localise` points those
modules' `_` at the catalogue instead (LIBRARY lists the msgids used). Its click has the rest
(`Usage:`, the help option's text) in plain strings: the usage line gets a context class whose
formatter takes a translated prefix, and the help option its translated text. Usage errors
(`Error: No such option…`) are said by cli/usage_l10n.py, which shows them itself.
"""

from __future__ import annotations

import contextlib
import gettext
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import typer.core

from amosync.l10n.catalog import N_, gettext_for
from amosync.l10n.cli import cli_language

if TYPE_CHECKING:
    # what typer.main.get_command builds (the locked typer carries its own copy of click)
    from typer._click.core import Command

# typer's and click's words a person reads in `--help`.
LIBRARY: tuple[str, ...] = (
    N_("Usage:"),
    N_("Arguments"),
    N_("Options"),
    N_("Commands"),
    N_("Show this message and exit."),
    N_("default: {default}"),
    N_("env var: {var}"),
    N_("required"),
)


def help_language(environ: dict[str, str] | None = None, dotenv: Path = Path(".env")) -> str:
    """AMOSYNC_LANG from the environment or `.env` (as the settings read it), else the
    locale. `--help` loads no settings: an invalid one must not hide the help."""
    env = dict(os.environ if environ is None else environ)
    if not env.get("AMOSYNC_LANG", "").strip():
        from dotenv import dotenv_values  # pydantic-settings' own .env reader

        with contextlib.suppress(OSError, UnicodeDecodeError):
            env["AMOSYNC_LANG"] = dotenv_values(dotenv, encoding="utf-8").get("AMOSYNC_LANG") or ""
    return cli_language(env)


def _commands(command: Command) -> Iterator[Command]:
    yield command
    for sub in getattr(command, "commands", {}).values():  # a group's sub-commands
        yield from _commands(sub)


def help_texts(command: Command) -> Iterator[str]:
    """Every help text of `command` and its sub-commands, in English (the msgids)."""
    for cmd in _commands(command):
        yield from (t for t in (cmd.help, cmd.short_help, cmd.epilog) if t)
        yield from (h for p in cmd.params if (h := getattr(p, "help", None)))


def localise(command: Command, lang: str) -> Command:
    """`command` (and its sub-commands) with help texts and typer's words in `lang`."""
    if lang == "en":
        return command
    _ = gettext_for(lang)
    context_class = _context_class(command, _("Usage:") + " ")
    for cmd in _commands(command):
        cmd.help = _(cmd.help) if cmd.help else cmd.help
        cmd.short_help = _(cmd.short_help) if cmd.short_help else cmd.short_help
        cmd.epilog = _(cmd.epilog) if cmd.epilog else cmd.epilog
        for param in cmd.params:
            text = getattr(param, "help", None)
            if text:
                setattr(param, "help", _(text))  # noqa: B010 - not every Parameter has help
        cmd.context_class = context_class
        # the help option is made once per command and kept (click caches it)
        option = cmd.get_help_option(context_class(cmd))
        if option is not None and option.help:
            option.help = _(option.help)
    _speak_typer(command, _)
    return command


def _context_class(command: Command, usage: str) -> Any:
    """The command's context class, with a formatter whose usage line starts with `usage`."""
    base = command.context_class
    formatter = base.formatter_class

    def write_usage(self: Any, prog: str, args: str = "", prefix: str | None = None) -> None:
        formatter.write_usage(self, prog, args, usage if prefix is None else prefix)

    localised = type("LocalisedFormatter", (formatter,), {"write_usage": write_usage})
    return type("LocalisedContext", (base,), {"formatter_class": localised})


def _speak_typer(command: Command, translate: Callable[[str], str]) -> None:
    """typer's modules (and click's, where typer uses click itself) call the stdlib's
    `gettext` through their own `_`: that alias is pointed at the catalogue."""
    engine = {sys.modules[c.__module__] for c in type(command).__mro__}
    modules = {typer.core} | {m for m in engine if m.__name__.startswith(("typer", "click"))}
    for module in modules:
        if getattr(module, "_", None) is gettext.gettext:
            setattr(module, "_", translate)  # noqa: B010 - the module's own gettext alias
