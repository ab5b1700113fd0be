"""The disk's own tail: fdatasync latency measured beside a run, in the same seconds.

Every durable answer waits for an fsync (SQLite's WAL, PostgreSQL's WAL). On the shared VMs
these figures come from, the virtual disk now and then takes 100-250 ms for one: every request
waiting on a commit then waits as long, whatever the service does (found in the eighth
round, docs/performance-history.md: an independent probe saw a 208 ms fdatasync at the moment
all 50 requests in flight took 219 ms). So a scenario can run `FsyncProbe` while it loads
`serve` and print the disk's p99 and max next to the ACK's.

The probe writes and fdatasyncs 4 KB every `interval` seconds in a directory of the run's
(the SQLite file's; for PostgreSQL it is the same disk only when the server is local, as with
the bench's default URL). At 50 fsyncs a second it adds little to what a loaded `serve`
does (hundreds of group commits a second).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import report

_BLOCK = b"\0" * 4096
SLOW_MS = 50.0  # an fsync at least this slow is counted as a stall


class FsyncProbe:
    def __init__(self, directory: Path, interval: float = 0.02) -> None:
        self._path = directory / f"fsync-probe-{os.getpid()}.dat"
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.latencies_ms: list[float] = []

    def __enter__(self) -> FsyncProbe:
        self._stop.clear()
        self.latencies_ms = []
        self._thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def summary(self) -> dict[str, Any]:
        """fsyncs made, their p50 / p99 / max in ms, and how many took `SLOW_MS` or more."""
        values = self.latencies_ms
        return {
            "fsyncs": len(values),
            "p50_ms": round(report.percentile(values, 50), 2),
            "p99_ms": round(report.percentile(values, 99), 2),
            "max_ms": round(max(values, default=0.0), 2),
            "slow": sum(v >= SLOW_MS for v in values),
        }

    def _run(self) -> None:
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while not self._stop.is_set():
                started = time.perf_counter()
                os.pwrite(fd, _BLOCK, 0)
                os.fdatasync(fd)
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
                self._stop.wait(self._interval)
        finally:
            os.close(fd)
            self._path.unlink(missing_ok=True)
