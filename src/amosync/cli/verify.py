"""`amosync verify`: compare stored deals and contacts with amoCRM and repair what differs.

Exit codes: 0 the copy matches amoCRM (or every divergence was repaired), 1 divergences
remain that could not be repaired (or amoCRM / the database failed), 2 bad usage.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.client import AmoClient
from amosync.catchup.verify import Verifier, VerifyReport
from amosync.catchup.verify_select import TABLES, ids_after, random_sample
from amosync.catchup.verify_state import write_last
from amosync.cli.common import fail, load_settings
from amosync.core.mapping import MappingError, RentProgField
from amosync.core.plan import MAX_IDS_PER_CALL
from amosync.db.database import Database
from amosync.db.urls import redacted
from amosync.errors import AmoCRMError
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext
from amosync.services import build_client
from amosync.settings import Settings

# An operator's command: logged apart from the worker's budgeted `verify` calls, so a
# `--all` over a large account never holds back catch-up for an hour.
CLI_PURPOSE = "verify-cli"
DEFAULT_SAMPLE = 250
MAX_SAMPLE = 1_000_000


def verify(
    sample: Annotated[
        int | None,
        typer.Option(
            help=f"Compare this many randomly chosen stored rows of each kind "
            f"(default {DEFAULT_SAMPLE}).",
        ),
    ] = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help="Compare every stored row (250 per API call).")
    ] = False,
    entities: Annotated[str, typer.Option(help="Comma-separated kinds to compare.")] = ",".join(
        TABLES
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare stored deals and contacts with amoCRM, repair every divergence, report it."""
    if sample is not None and all_rows:
        fail(N_("give --sample N or --all, not both"))
    if sample is not None and not 1 <= sample <= MAX_SAMPLE:
        fail(N_("--sample: give a number from 1 to {n}").format(n=MAX_SAMPLE))
    kinds = tuple(k.strip() for k in entities.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(TABLES))
    if unknown or not kinds:
        problem = N_("--entities: unknown kind {kinds}; use {known}")
        fail(problem.format(kinds=", ".join(unknown) or "—", known=", ".join(TABLES)))
    settings = load_settings()
    if settings.api_base_url is None:
        fail(N_("no amoCRM account configured: set AMOSYNC_AMOCRM_SUBDOMAIN (or _BASE_URL)"))
    size = None if all_rows else (sample or DEFAULT_SAMPLE)
    report = _run(settings, kinds, size)
    if as_json:
        scope = "all" if size is None else f"sample {size}"
        data = {**report.as_json(), "source": "cli", "scope": scope, "entities": list(kinds)}
        typer.echo(orjson.dumps(data).decode())
    else:
        typer.echo(render(report, kinds, size))
    if report.unrepaired:
        fail(N_("{n} divergence(s) could not be repaired").format(n=report.unrepaired), 1)


async def verify_rows(
    db: Database,
    client: AmoClient,
    rentprog: RentProgField,
    kinds: tuple[str, ...],
    sample: int | None,
) -> VerifyReport:
    """`sample` rows of each kind chosen at random, or every row (None); result stored."""
    verifier = Verifier(db, client, rentprog)
    report = VerifyReport()
    for entity in kinds:
        if sample is not None:
            async with db.read() as conn:
                ids = await random_sample(conn, entity, sample)
            report.add(await verifier.verify(entity, ids))
            continue
        after = 0
        while True:
            async with db.read() as conn:
                ids = await ids_after(conn, entity, after, MAX_IDS_PER_CALL)
            if not ids:
                break
            report.add(await verifier.verify(entity, ids))
            after = ids[-1]
    report.finished_at = datetime.now(UTC)
    async with db.write() as conn:
        await write_last(conn, {**report.as_json(), "source": "cli"})
    return report


def _run(settings: Settings, kinds: tuple[str, ...], sample: int | None) -> VerifyReport:
    async def main() -> VerifyReport:
        db = Database.open(settings.database_url)
        client = build_client(settings, db, purpose=CLI_PURPOSE)
        rentprog = settings.rentprog_field
        try:
            return await verify_rows(db, client, rentprog, kinds, sample)
        finally:
            await client.aclose()
            await db.dispose()

    try:
        return asyncio.run(main())
    except AmoCRMError as exc:
        fail(N_("amoCRM: {error}").format(error=exc), 1)
    except MappingError as exc:
        fail(N_("amoCRM answered an object amosync cannot map: {error}").format(error=exc), 1)
    except SQLAlchemyError as exc:
        problem = N_("database {url}: {error} (is it migrated? run `amosync migrate`)")
        fail(problem.format(url=redacted(settings.database_url), error=str(exc).splitlines()[0]), 1)


def render(report: VerifyReport, kinds: tuple[str, ...], sample: int | None) -> str:
    """The report for a person, in AMOSYNC_LANG (`--json` stays English)."""
    _ = cli_gettext()
    scope = (
        _("every stored row")
        if sample is None
        else _("a sample of up to {n} per kind").format(n=sample)
    )
    head = _("Verified {scope} of {kinds} against amoCRM ({calls} API calls):")
    counts = _("checked {checked}, diverged {diverged}, repaired {repaired}, not repaired {left}")
    lines = [
        head.format(scope=scope, kinds=", ".join(_(k) for k in kinds), calls=report.calls),
        "  "
        + counts.format(
            checked=report.checked,
            diverged=report.diverged,
            repaired=report.repaired,
            left=report.unrepaired,
        ),
    ]
    if report.changed_meanwhile:
        meanwhile = _("{n} changed by the worker meanwhile (checked again later)")
        lines.append("  " + meanwhile.format(n=report.changed_meanwhile))
    for example in report.examples:
        lines.append(f"  {_(example.entity)} {example.id}: {', '.join(example.fields)}")
    return "\n".join(lines)
