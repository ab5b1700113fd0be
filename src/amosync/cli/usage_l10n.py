"""Usage errors (an unknown option, a bad value, a missing argument…) in the CLI's language.

typer 0.29 carries its own copy of click, which builds these messages with f-strings and
prints them in `UsageError.show` (`Usage: …`, `Try '… --help' for help.`, `Error: …`): unlike
upstream click it calls no gettext, so binding a gettext domain reaches none of them. Only
typer's own "Missing command.", "No such command …" and "Aborted!" go through the stdlib's
gettext, which cli/help_l10n.py already points at the catalogue.

So `run` runs the command tree in click's non-standalone mode, where the errors come back to
the caller, and does what standalone mode does with them: English is shown by the library
itself (byte for byte what it always printed); another language is rebuilt here from catalogue
templates. The messages a parser or `ctx.fail` composed are recognised by MESSAGES (typer's
English wording, the msgids) and the values pydantic refused by their error type (VALUES);
option names and typed values stay as typed. A message nothing here recognises stays English.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from pydantic import ValidationError

# typer's click exposes its exceptions only here (typer.BadParameter aside)
from typer._click.exceptions import (
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
    _join_param_hints,
)

from amosync.l10n.catalog import N_, gettext_for
from amosync.l10n.phrases import template_pattern

if TYPE_CHECKING:
    from typer._click.core import Command

Translate = Callable[[str], str]

# The frame of every error, as UsageError.show and ClickException.show print it.
FRAME: tuple[str, ...] = (
    N_("Error: {message}"),
    N_("Try '{command} {option}' for help."),
    N_("Aborted!"),  # typer.core: its `_` is the catalogue's (help_l10n._speak_typer)
    # typer.core's `ctx.fail` texts, translated by typer itself through the same `_`
    N_("Missing command."),
    N_("No such command {name!r}."),
)

# What typer's click composes (its f-strings; `{name!r}` written with its quotes). `{n}`
# matches a number (amosync.l10n.phrases), any other field any text, kept as it is.
MESSAGES: tuple[str, ...] = (
    N_("No such option: {name}"),
    N_("(Possible options: {options})"),
    N_("Option '{name}' does not take a value."),
    N_("Option '{name}' requires an argument."),
    N_("Option '{name}' requires {n} arguments."),
    N_("Argument '{name}' takes {n} values."),
    N_("Got unexpected extra argument(s) ({args})"),
    N_("{message}. Did you mean {suggestions}?"),
    N_("Invalid value for {name}: {message}"),
    N_("Invalid value: {message}"),
    N_("Value must be an iterable."),
    N_("{names} (env var: '{var}')"),
    N_("Choose from:\n\t{choices}"),
    # the ValueErrors of typer's own pydantic validators (a choice, a tuple)
    N_("{value} is not one of {choices}."),
    N_("{n} values are required, but {n2} given."),
)

# MissingParameter says "Missing {param_type} {hint}."; one sentence per kind of parameter.
MISSING: dict[str, str] = {
    "argument": N_("Missing argument {name}."),
    "option": N_("Missing option {name}."),
    "parameter": N_("Missing parameter {name}."),
}

# typer checks values with pydantic: its error type -> its English template (the msgid; a
# unit test holds them equal to pydantic's), fields from the error's context.
VALUES: dict[str, str] = {
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "finite_number": N_("Input should be a finite number"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "greater_than": N_("Input should be greater than {gt}"),
    "less_than": N_("Input should be less than {lt}"),
}


def run(
    command: Command, lang: str, args: list[str] | None = None, prog_name: str | None = None
) -> NoReturn:
    """Run `command` as typer's standalone mode does (the same exit codes and streams), its
    usage errors said in `lang`. The commands return None: a return value would be taken
    for an exit code, as non-standalone mode returns that of an `Exit`."""
    try:
        code = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except NoArgsIsHelpError as error:  # the command's help, already in `lang`
        error.show()
        sys.exit(error.exit_code)
    except ClickException as error:
        if lang == "en":
            error.show()
        else:
            show(error, gettext_for(lang))
        sys.exit(error.exit_code)
    except typer.Abort:
        typer.echo(gettext_for(lang)("Aborted!"), file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


def show(error: ClickException, _: Translate) -> None:
    """What `error.show()` prints, from the catalogue's templates."""
    color = error.show_color
    if isinstance(error, UsageError):
        color = None
        ctx = error.ctx
        if ctx is not None:
            color = ctx.color
            hint = ""
            if ctx.command.get_help_option(ctx) is not None:
                hint = _("Try '{command} {option}' for help.").format(
                    command=ctx.command_path, option=ctx.help_option_names[0]
                )
                hint += "\n"
            typer.echo(f"{ctx.get_usage()}\n{hint}", err=True, color=color)
    typer.echo(_("Error: {message}").format(message=message(error, _)), err=True, color=color)


def message(error: ClickException, _: Translate) -> str:
    """`error.format_message()` in the catalogue's language."""
    if isinstance(error, MissingParameter):
        return _missing(error, _)
    if isinstance(error, BadParameter):
        hint = _hint(error)
        said = _value(error, _)
        if hint is None:
            return _("Invalid value: {message}").format(message=said)
        name = translated(hint, _)
        return _("Invalid value for {name}: {message}").format(name=name, message=said)
    said = translated(error.message, _)
    if isinstance(error, NoSuchOption) and error.possibilities:
        options = ", ".join(sorted(error.possibilities))
        said += " " + _("(Possible options: {options})").format(options=options)
    return said


def translated(text: str, _: Translate) -> str:
    """`text` rebuilt from the translation of the MESSAGES template it matches (its fields
    as they are: option names, typed values); else the whole text's translation, if any."""
    for template in MESSAGES:
        match = template_pattern(template).fullmatch(text)
        if match is not None:
            return _(template).format(**match.groupdict())
    return _(text)  # a whole text: "Value must be an iterable.", typer's own (already said)


def _hint(error: BadParameter) -> str | None:
    """The parameter's name as BadParameter.format_message shows it ('--port', 'ID'; an
    option shown with its variable: "'--url' (env var: 'AMOSYNC_…')")."""
    hint: Any = error.param_hint
    if hint is None and error.param is not None:
        hint = error.param.get_error_hint()
    return _join_param_hints(hint)


def _value(error: BadParameter, _: Translate) -> str:
    """Why the value was refused: pydantic's reason by its error type, else the message."""
    cause = error.__cause__
    if isinstance(cause, ValidationError) and cause.errors():
        first = cause.errors()[0]
        if first["type"] == "value_error":  # "Value error, {error}": typer's own words
            return translated(str(first.get("ctx", {}).get("error", first["msg"])), _)
        template = VALUES.get(first["type"])
        if template is not None:
            # pydantic shows a whole float bound as an integer ("at least 1", not "1.0")
            bounds = {
                k: int(v) if isinstance(v, float) and v.is_integer() else v
                for k, v in first.get("ctx", {}).items()
            }
            return _(template).format(**bounds)
    return translated(error.message, _)


def _missing(error: MissingParameter, _: Translate) -> str:
    hint = _hint(error)
    kind = error.param_type or (error.param.param_type_name if error.param else "parameter")
    if hint is None:
        return translated(error.format_message(), _)
    said = _(MISSING.get(kind, MISSING["parameter"])).format(name=translated(hint, _))
    extra = [error.message] if error.message else []
    if error.param is not None and (more := error.param.get_missing_message(ctx=error.ctx)):
        extra.append(more)
    # typer: "Missing {kind} {hint}. {message}. {choices}"
    return " ".join([said, ". ".join(translated(e, _) for e in extra)]) if extra else said
