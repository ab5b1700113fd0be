"""`amosync dev …`: tools for trying amosync without an amoCRM account."""

from __future__ import annotations

from typing import Annotated

import typer

from amosync.cli.dev_fake import contact_app, lead_app, token, webhook_app
from amosync.cli.ports import bind_or_exit, port_unavailable

dev_app = typer.Typer(
    help="Development tools (a fake amoCRM to try the whole pipeline).", no_args_is_help=True
)
fake_app = typer.Typer(
    help="Run the fake amoCRM API (the one the tests use) on a port; its subcommands act on "
    "a running fake as a person in amoCRM's UI would (and it then sends the webhooks)."
)
fake_app.add_typer(lead_app, name="lead")
fake_app.add_typer(contact_app, name="contact")
fake_app.add_typer(webhook_app, name="webhook")
fake_app.command("token")(token)
dev_app.add_typer(fake_app, name="fake-amocrm")


@fake_app.callback(invoke_without_command=True)
def fake_amocrm(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8081,
    seed: Annotated[int, typer.Option(help="Leads to create at start.")] = 5,
    redirect_uri: Annotated[
        str | None,
        typer.Option(help="The OAuth integration's Redirect URI (default: the fake's)."),
    ] = None,
) -> None:
    """Run the fake amoCRM API (the one the tests use) on a port."""
    if ctx.invoked_subcommand is not None:
        return
    from amosync.logs import configure_logging
    from amosync.testing import serve_fake

    configure_logging("INFO", "console")  # the fake announces its URL and token in the log
    bind_or_exit(host, port, "--port").close()  # a busy port: one line, exit 2
    try:
        serve_fake(host, port, seed_leads=seed, redirect_uri=redirect_uri)
    except OSError as exc:  # taken between the check and the fake's own bind
        port_unavailable(host, port, "--port", exc)
