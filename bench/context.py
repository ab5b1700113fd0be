"""What every scenario gets: where to write, which database, how long to run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import dbs, procs

# Catch-up (AMOSYNC_RECONCILE_INTERVAL) makes its first pass about 30 s after start and
# re-fetches every lead changed lately: right for users, but in the burst and freshness
# scenarios it would add calls no webhook caused and re-stamp rows it did not change.
NO_CATCHUP = {"AMOSYNC_RECONCILE_INTERVAL": "0"}


@dataclass(frozen=True)
class Context:
    workdir: Path  # databases, wrk scripts
    logs: Path  # one log file per started process
    db: str  # "sqlite" | "postgresql"
    pg_admin_url: str
    quick: bool
    latency: float  # seconds the fake amoCRM takes per API call

    def pick(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    @contextlib.contextmanager
    def serve_on_fresh_db(
        self, fake_url: str, label: str, extra_env: dict[str, str] | None = None
    ) -> Iterator[tuple[procs.Proc, str]]:
        """A new database (migrated the way a user would), and `amosync serve` on it."""
        with dbs.database(self.db, self.workdir, self.pg_admin_url, label) as url:
            if self.db == "postgresql":
                procs.migrate(url, fake_url, self.logs)
            name = f"serve-{label}-{self.db}"
            with procs.serve(self.logs, url, fake_url, name, extra_env) as srv:
                yield srv, url
