"""`amosync doctor`: is everything in place for a live copy of the account? ✓/!/✗ with fixes.

Exit code 1 when any check fails (✗); warnings (!) and skipped items (–) do not fail.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer

from amosync.cli.common import load_settings
from amosync.doctor.checks import CheckResult, failed, run_checks
from amosync.doctor.facts import default_service_url, gather
from amosync.l10n.cli import cli_gettext, cli_language_now
from amosync.l10n.phrases import translate

MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "–"}


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    service_url: Annotated[
        str | None,
        typer.Option(
            "--service-url",
            help="Where amosync serves (its /health is checked). "
            "Default: http://AMOSYNC_HOST:AMOSYNC_PORT.",
        ),
    ] = None,
) -> None:
    """Check settings, database, token, webhook subscription, service, events, RentProg field."""
    settings = load_settings()
    facts = asyncio.run(gather(settings, service_url or default_service_url(settings)))
    results = run_checks(settings, facts)
    bad = failed(results)
    if as_json:
        body = {
            "ok": not bad,
            "failed": [r.name for r in bad],
            "checks": [r.as_json() for r in results],
        }
        typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(render(results))
    if bad:
        raise typer.Exit(1)


def render(results: list[CheckResult]) -> str:
    """The checklist for a person, in AMOSYNC_LANG (`--json` stays English)."""
    _, lang = cli_gettext(), cli_language_now()
    names = {r.name: _(r.name) for r in results}
    width = max(len(n) for n in names.values())
    lines: list[str] = []
    for r in results:
        lines.append(f"{MARKS[r.status]} {names[r.name]:<{width}}  {translate(r.detail, lang)}")
        if r.fix and r.status in ("fail", "warn"):
            lines.append(f"  {'':<{width}}  → {translate(r.fix, lang)}")
    bad = failed(results)
    lines.append("")
    if bad:
        summary = _("{n} of {total} checks failed: {names}")
        lines.append(
            summary.format(
                n=len(bad), total=len(results), names=", ".join(names[r.name] for r in bad)
            )
        )
    elif _warned(results):
        lines.append(_("all checks passed (with warnings)"))
    else:
        lines.append(_("all checks passed"))
    return "\n".join(lines)


def _warned(results: list[CheckResult]) -> bool:
    return any(r.status == "warn" for r in results)
