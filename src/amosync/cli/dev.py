"""`amosync dev …`: tools for trying amosync without an amoCRM account."""

from __future__ import annotations

from typing import Annotated

import typer

from amosync.cli.ports import bind_or_exit, port_unavailable

dev_app = typer.Typer(
    help="Development tools (a fake amoCRM to try the whole pipeline).", no_args_is_help=True
)


@dev_app.command("fake-amocrm")
def fake_amocrm(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8081,
    seed: Annotated[int, typer.Option(help="Leads to create at start.")] = 5,
) -> None:
    """Run the fake amoCRM API (the one the tests use) on a port."""
    from amosync.logs import configure_logging
    from amosync.testing import serve_fake

    configure_logging("INFO", "console")  # the fake announces its URL and token in the log
    bind_or_exit(host, port, "--port").close()  # a busy port: one line, exit 2
    try:
        serve_fake(host, port, seed_leads=seed)
    except OSError as exc:  # taken between the check and the fake's own bind
        port_unavailable(host, port, "--port", exc)
