"""Catch-up: webhooks are hints, so amosync also asks amoCRM what changed, inside a budget.

- `reconcile`: the periodic (and on-demand) run since a watermark, plus deletions;
- `backfill`: the first full load, resumable, off unless asked;
- `budget`: the hourly cap both share, and when they step aside for webhooks.
"""

from amosync.catchup.budget import BACKFILL, CATCHUP, ApiBudget
from amosync.catchup.job import catchup_job, reconciler_for
from amosync.catchup.reconcile import CatchupBusy, Reconciler, ReconcileReport

__all__ = [
    "BACKFILL",
    "CATCHUP",
    "ApiBudget",
    "CatchupBusy",
    "ReconcileReport",
    "Reconciler",
    "catchup_job",
    "reconciler_for",
]
