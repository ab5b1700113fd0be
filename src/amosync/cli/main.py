"""Entry point of the `amosync` command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from amosync import __version__
from amosync.cli.auth import auth_app
from amosync.cli.copy_db import copy_db
from amosync.cli.demo import demo
from amosync.cli.dev import dev_app
from amosync.cli.doctor import doctor
from amosync.cli.events import events_app
from amosync.cli.help_l10n import help_language, localise
from amosync.cli.run import migrate, serve, worker
from amosync.cli.status import status
from amosync.cli.sync import backfill, reconcile
from amosync.cli.usage_l10n import run
from amosync.cli.verify import verify
from amosync.cli.webhooks import webhooks_app

if TYPE_CHECKING:
    from typer._click.core import Command

app = typer.Typer(
    name="amosync",
    help="Keep a live copy of your amoCRM deals and contacts, fed by webhooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: rich's panels would take `[env: …]` for markup and drop it, and
    # their words bypass the catalogue (cli/help_l10n.py translates click's).
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"amosync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    """Settings come from AMOSYNC_* variables or a .env file (see docs/CONFIGURATION.md)."""


app.command()(serve)
app.command()(worker)
app.command()(migrate)
app.command()(status)
app.command()(doctor)
app.command(name="copy-db")(copy_db)
app.add_typer(auth_app, name="auth")
app.command()(reconcile)
app.command()(backfill)
app.command()(verify)
app.add_typer(events_app, name="events")
app.add_typer(dev_app, name="dev")
app.command()(demo)
app.add_typer(webhooks_app, name="webhooks")


def command(lang: str | None = None) -> Command:
    """The click command tree, its help in `lang` (default: the CLI's language: AMOSYNC_LANG,
    `.env`, the locale)."""
    return localise(typer.main.get_command(app), lang or help_language())


def main() -> None:
    """`amosync`: the command tree, its usage errors too in the CLI's language."""
    lang = help_language()
    run(command(lang), lang)
