"""When a backfill may send its next request: the hourly budget and the webhook backlog.

Both backfills (`backfill` and `backfill --history`) either stop at a limit (`--no-wait`,
resuming from their cursor next time) or wait for it, saying so through `on_wait`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from amosync.catchup.budget import STOP_BUDGET, ApiBudget

BACKLOG_POLL = 5.0  # seconds between looks at the webhook backlog while waiting
MAX_SLEEP = 60.0  # wake at least this often while waiting for the budget, to look again

Waiting = Callable[[str, float], None]  # reason, seconds


@dataclass(frozen=True)
class Pacer:
    budget: ApiBudget
    wait: bool = True
    on_wait: Waiting | None = None

    async def hold(self) -> str | None:
        """None once the next request may go (waiting first, when waiting is on); else why
        the caller must stop (budget | backlog)."""
        while (reason := await self.budget.stop_reason()) is not None:
            if not self.wait:
                return reason
            if reason == STOP_BUDGET:
                seconds = await self.budget.seconds_until_free()
            else:
                seconds = BACKLOG_POLL
            if self.on_wait is not None:
                self.on_wait(reason, seconds)
            await asyncio.sleep(min(seconds, MAX_SLEEP))
        return None
