"""Which amosync processes are alive on a database, from the traces they leave in it.

Workers beat in `amosync_workers` every few seconds (worker/heartbeat.py). A web-only
process (`serve --no-worker`) beats in `amosync_state` under `web_process.<host>:<pid>`
(web/presence.py). `copy-db` reads both before it touches a target: emptying a database a
running `serve` acknowledges webhooks into would lose them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select

from amosync.db.tables import sync_state, workers
from amosync.l10n.catalog import N_

WEB_KEY_PREFIX = "web_process."
# Workers beat every 5 s and web processes every 20 s: a minute of silence means gone.
ALIVE_WITHIN = timedelta(seconds=60)
STOPPED = "stopped"  # a worker that shut down cleanly says so in its last beat


@dataclass(frozen=True)
class LiveProcess:
    kind: str  # "worker" or "web"
    name: str  # host:pid[:suffix]
    last_seen: datetime

    def describe(self, now: datetime) -> str:
        age = max(0, int((now - self.last_seen).total_seconds()))
        return N_("{kind} {name} (seen {n} s ago)").format(kind=self.kind, name=self.name, n=age)


def live_processes(conn: Connection, now: datetime | None = None) -> list[LiveProcess]:
    now = now or datetime.now(UTC)
    since = now - ALIVE_WITHIN
    found = [
        LiveProcess("worker", row.id, row.last_seen)
        for row in conn.execute(
            select(workers.c.id, workers.c.last_seen).where(
                workers.c.last_seen >= since, workers.c.state != STOPPED
            )
        )
    ]
    found += [
        LiveProcess(N_("web"), row.key[len(WEB_KEY_PREFIX) :], row.updated_at)
        for row in conn.execute(
            select(sync_state.c.key, sync_state.c.updated_at).where(
                sync_state.c.key.startswith(WEB_KEY_PREFIX, autoescape=True),
                sync_state.c.updated_at >= since,
            )
        )
    ]
    return found
