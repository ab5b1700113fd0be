"""The worker's "amoCRM refuses us for a while" signal, and what `worker --once` makes of it."""

from __future__ import annotations

# `amosync worker --once` exits with this code when amoCRM refuses calls for now (the token
# is refused, or the IP is blocked): the events stay pending; run it again later.
PAUSED_EXIT_CODE = 3


class WorkerPaused(Exception):
    """amoCRM refuses us for a while (401/403): stop this batch, keep events pending."""

    def __init__(self, state: str, detail: str, pause: float) -> None:
        super().__init__(detail)
        self.state, self.detail, self.pause = state, detail, pause

    def one_line(self) -> str:
        """For `worker --once`: what stopped it and when to try again, on one line."""
        detail = " ".join(self.detail.split())[:300]
        return (
            f"worker paused ({self.state.replace('_', ' ')}): {detail}; "
            f"events stay pending, run again in {self.pause:.0f} s or later"
        )
