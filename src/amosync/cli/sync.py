"""`amosync reconcile` and `amosync backfill`: catch-up on demand and the first full load
(`backfill --history`: the older stage changes, catchup/history.py)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
import typer
from sqlalchemy.exc import SQLAlchemyError

from amosync.amocrm.client import AmoClient
from amosync.catchup.backfill import Backfill, BackfillReport
from amosync.catchup.budget import (
    BACKFILL,
    CATCHUP,
    STOP_BACKLOG,
    STOP_BUDGET,
    spent_last_hour,
)
from amosync.catchup.history import DEFAULT_SINCE, HistoryBackfill, HistoryReport
from amosync.catchup.job import budget_for, reconciler_for
from amosync.catchup.pages import ENTITIES
from amosync.catchup.reconcile import CatchupBusy, ReconcileReport
from amosync.cli.common import fail, load_settings
from amosync.db.database import Database
from amosync.db.urls import redacted
from amosync.errors import AmoCRMError
from amosync.l10n import N_
from amosync.l10n.cli import cli_gettext
from amosync.services import build_client
from amosync.settings import Settings

T = TypeVar("T")

HISTORY = N_("history")  # the progress bar's label
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STOPPED = {
    STOP_BUDGET: N_("the hourly API budget (AMOSYNC_API_BUDGET_PER_HOUR) is spent"),
    STOP_BACKLOG: N_("the worker has a large webhook backlog, which comes first"),
}


def parse_duration(text: str) -> float:
    """`30m`, `2h`, `1d`, `90s` → seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None or float(match[1]) <= 0:
        problem = N_("invalid duration {text}: use a number with s, m, h or d (30m, 2h, 1d)")
        raise ValueError(problem.format(text=repr(text)))
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def reconcile(
    since: Annotated[
        str | None,
        typer.Option(help="Reach back this far (30m, 2h, 1d) instead of from the watermark."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fetch what changed in amoCRM (and what was deleted) and store it, inside the budget."""
    settings = load_settings()
    try:
        seconds = parse_duration(since) if since is not None else None
    except ValueError as exc:
        fail(N_("--since: {error}").format(error=exc))
    _require_account(settings)

    async def work(db: Database, client: AmoClient) -> tuple[ReconcileReport, int]:
        report = await reconciler_for(settings, db, client).run(seconds)
        return report, await spent_last_hour(db)

    report, spent = _run(settings, CATCHUP, work)
    if as_json:
        data = {**report.as_json(), "budget_per_hour": settings.api_budget_per_hour}
        typer.echo(orjson.dumps({**data, "budget_spent_last_hour": spent}).decode())
    else:
        typer.echo(_render_reconcile(report, spent, settings.api_budget_per_hour, since))
    if report.stopped is not None:
        problem = N_("stopped early: {why}; the next run continues from here")
        fail(problem.format(why=_STOPPED.get(report.stopped, report.stopped)), 1)


def backfill(
    entities: Annotated[str, typer.Option(help="Comma-separated kinds to load.")] = ",".join(
        ENTITIES
    ),
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="When the hourly budget is spent, wait for it (default) or stop.",
        ),
    ] = True,
    restart: Annotated[
        bool, typer.Option("--restart", help="Forget earlier progress and start over.")
    ] = False,
    history: Annotated[
        bool,
        typer.Option(
            "--history",
            help="Load older stage changes (lead_status_changed events) instead of entities.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="With --history: how far back (30d, 12h; default 90d)."),
    ] = None,
) -> None:
    """Load every lead, contact and company once, or with --history the older stage changes
    of deals (resumable; spends from the API budget)."""
    settings = load_settings()
    if history:
        _backfill_history(settings, since, wait=wait, restart=restart)
        return
    if since is not None:
        fail(N_("--since goes with --history"))
    kinds = tuple(k.strip() for k in entities.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(ENTITIES))
    if unknown or not kinds:
        problem = N_("--entities: unknown kind {kinds}; use {known}")
        fail(problem.format(kinds=", ".join(unknown) or "—", known=", ".join(ENTITIES)))
    _require_account(settings)
    progress = _ProgressDisplay(kinds)

    async def work(db: Database, client: AmoClient) -> BackfillReport:
        job = Backfill(
            db,
            client,
            budget_for(settings, db),
            settings.rentprog_field,
            wait=wait,
            on_progress=progress.update,
            on_wait=progress.waiting,
            max_clock_skew=settings.max_clock_skew,
        )
        return await job.run(kinds, restart=restart)

    with progress:
        report = _run(settings, BACKFILL, work)
    _ = cli_gettext()
    stored = ", ".join(f"{_(k)} {report.total.get(k, 0)}" for k in kinds)
    so_far = _("Stored so far: {stored}. API calls this run: {calls}.")
    typer.echo(so_far.format(stored=stored, calls=report.calls))
    if report.stopped is not None:
        problem = N_("backfill not finished: {why}; run `amosync backfill` again to continue")
        fail(problem.format(why=_STOPPED.get(report.stopped, report.stopped)), 1)
    typer.echo(_("Backfill complete."))


def _backfill_history(settings: Settings, since: str | None, *, wait: bool, restart: bool) -> None:
    try:
        seconds = parse_duration(since) if since is not None else DEFAULT_SINCE
    except ValueError as exc:
        fail(N_("--since: {error}").format(error=exc))
    _require_account(settings)
    progress = _ProgressDisplay((HISTORY,))

    async def work(db: Database, client: AmoClient) -> HistoryReport:
        job = HistoryBackfill(
            db,
            client,
            budget_for(settings, db),
            wait=wait,
            on_progress=progress.days,
            on_wait=progress.waiting,
            max_clock_skew=settings.max_clock_skew,
        )
        return await job.run(seconds, restart=restart)

    with progress:
        report = _run(settings, BACKFILL, work)
    _ = cli_gettext()
    done = _("Stage changes stored so far: {n} ({days} days back). API calls this run: {calls}.")
    typer.echo(done.format(n=report.total, days=report.days, calls=report.calls))
    if report.stopped is not None:
        problem = N_(
            "history backfill not finished: {why}; run `amosync backfill --history` again "
            "to continue"
        )
        fail(problem.format(why=_STOPPED.get(report.stopped, report.stopped)), 1)
    typer.echo(_("History backfill complete."))


def _require_account(settings: Settings) -> None:
    if settings.api_base_url is None:
        fail(N_("no amoCRM account configured: set AMOSYNC_AMOCRM_SUBDOMAIN (or _BASE_URL)"))


def _run(
    settings: Settings, purpose: str, work: Callable[[Database, AmoClient], Awaitable[T]]
) -> T:
    async def main() -> T:
        db = Database.open(settings.database_url)
        client = build_client(settings, db, purpose=purpose)
        try:
            return await work(db, client)
        finally:
            await client.aclose()
            await db.dispose()

    try:
        return asyncio.run(main())
    except CatchupBusy as exc:
        fail(str(exc), 1)
    except AmoCRMError as exc:
        fail(N_("amoCRM: {error}").format(error=exc), 1)
    except SQLAlchemyError as exc:
        problem = N_("database {url}: {error} (is it migrated? run `amosync migrate`)")
        fail(problem.format(url=redacted(settings.database_url), error=str(exc).splitlines()[0]), 1)


def _render_reconcile(report: ReconcileReport, spent: int, budget: int, since: str | None) -> str:
    _ = cli_gettext()
    head = (
        _("Catch-up from the last {since}:").format(since=since)
        if since
        else _("Catch-up from the watermark:")
    )
    lines = [head]
    for entity, fetched in report.fetched.items():
        counts = _("{fetched} fetched, {written} written")
        written = report.written.get(entity, 0)
        lines.append(f"  {_(entity):<10} " + counts.format(fetched=fetched, written=written))
    deleted = _("deleted")
    lines.append(f"  {deleted:<10} " + _("{n} flagged from events").format(n=report.deleted))
    stages = _("stages")
    moved = _("{n} stage changes from events").format(n=report.stage_changes)
    lines.append(f"  {stages:<10} " + moved)
    calls = _("API calls: {calls} (budget: {spent} of {budget} used in the last hour)")
    lines.append(calls.format(calls=report.calls, spent=spent, budget=budget))
    return "\n".join(lines)


class _ProgressDisplay:
    """A rich progress bar per kind on a terminal; one line per finished kind otherwise."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self._kinds = kinds
        self._tty = sys.stdout.isatty()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _ProgressDisplay:
        if self._tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeElapsedColumn(),
            )
            self._progress.__enter__()
            _ = cli_gettext()
            for kind in self._kinds:
                # amoCRM does not say how many there are: the bar pulses until a kind is done.
                self._tasks[kind] = self._progress.add_task(_(kind), total=None, note="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, kind: str, stored: int, finished: bool) -> None:
        if self._progress is not None:
            total = stored if finished else None
            self._progress.update(self._tasks[kind], completed=stored, total=total, note="")
        elif finished:
            _ = cli_gettext()
            typer.echo(_("{kind}: {n} stored, done").format(kind=_(kind), n=stored))

    def days(self, stored: int, days: int, wanted: int, finished: bool) -> None:
        """The history backfill: a bar of days walked back, with the changes stored."""
        _ = cli_gettext()
        if self._progress is not None:
            task = self._tasks[HISTORY]
            note = _("{n} stage changes").format(n=stored)
            self._progress.update(task, completed=days, total=wanted, note=note)
        elif finished:
            typer.echo(
                _("{kind}: {n} stage changes stored, done").format(kind=_(HISTORY), n=stored)
            )

    def waiting(self, reason: str, seconds: float) -> None:
        _ = cli_gettext()
        why = _(_STOPPED.get(reason, reason))
        note = _("waiting {n} s: {why}").format(n=f"{seconds:.0f}", why=why)
        if self._progress is not None:
            for task in self._tasks.values():
                self._progress.update(task, note=note)
        else:
            typer.echo(note)
