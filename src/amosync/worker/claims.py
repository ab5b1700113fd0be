"""The events a live worker holds, kept leased by its heartbeat (issue #18).

A claim hides an event for `lease_seconds` (`AMOSYNC_WORKER_LEASE_SECONDS`, default 20 s):
long enough to outlive a few missed heartbeats, short enough that a worker killed with
`kill -9` leaves its batch to the next worker within seconds, not minutes. While the worker
is alive its heartbeat (every 5 s, worker/heartbeat.py) pushes the lease of the events it
still holds `lease_seconds` ahead, in the heartbeat's own transaction: one more short
statement, by primary key, per beat, and none while the worker holds nothing. So a batch
that waits minutes behind 429s is never taken from a live worker.

Only leases at least one heartbeat old are rewritten (`held_for`): a batch settled within
a beat or two, the normal case, costs the renewal a few index reads and no row writes; a
batch held longer has each row rewritten every other beat (measured in docs/RELIABILITY.md).
With the defaults a lease is renewed while it has 10–15 s left, so it outlives two failed
beats in a row.

If renewals fail (the database hiccups for longer than the lease) the lease lapses and
another worker may claim the same events and fetch them again: a double fetch, harmless
because upserts are idempotent and newer-wins, and settling an event twice is harmless too.
Nothing else depends on the lease.

The set may be a superset of what the worker really holds: ids are added as they are
claimed and dropped as the worker settles, reschedules or releases them. The renewal
touches only rows still pending and still locked by this worker, so an id left behind (a
settle that failed half-way, a lapsed lease another worker took over) is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from amosync.inbox.store import InboxStore


class HeldClaims:
    def __init__(
        self, inbox: InboxStore, worker_id: str, lease_seconds: float, *, held_for: float
    ) -> None:
        self._inbox = inbox
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._held_for = held_for
        self._ids: set[int] = set()

    def add(self, event_ids: Iterable[int]) -> None:
        self._ids.update(event_ids)

    def discard(self, event_ids: Iterable[int]) -> None:
        """These are settled or handed back: nothing to renew."""
        self._ids.difference_update(event_ids)

    def clear(self) -> None:
        """The batch is over: everything in it is settled, rescheduled or released."""
        self._ids.clear()

    def __len__(self) -> int:
        return len(self._ids)

    async def renew_in(self, conn: AsyncConnection) -> None:
        """Extend the lease of every held event, inside the heartbeat's transaction."""
        if self._ids:
            ids = sorted(self._ids)
            await self._inbox.renew_in(
                conn, self._worker_id, ids, self._lease_seconds, held_for=self._held_for
            )
