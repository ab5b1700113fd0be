"""SQLite WAL checkpoints on a thread of their own, so that no commit waits for one.

By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: the
committing caller waits while the WAL's pages are copied into the database file. With 10,000
deals stored that took 6 ms per worker cycle of 250 deals, with 1,000,000 deals 17 ms (the
pages an update touches are scattered over a 1 GB file), and in `serve` the worker holds the
process's write turn (db/turns.py) meanwhile, so webhook commits waited behind it.

So the service engine's connections, and the webhook appender's, never auto-checkpoint
(`wal_autocheckpoint=0`). Every commit calls `written()`, and this checkpointer runs a PASSIVE
checkpoint on its own thread and connection, `interval` seconds after the first write since
its last one. PASSIVE never waits for a lock and never blocks writers or readers; what it
cannot copy now (a reader still needs the frames) it copies next time. The WAL holds about
`interval` seconds of writes, and the copying runs beside the writers instead of inside them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# A checkpoint at most this often under writes: often enough to keep the WAL small (reads
# slow down as it grows), seldom enough to copy a page written many times only once.
DEFAULT_INTERVAL = 0.25
# The thread ends after this long without writes (the next write starts another), so an
# engine that is dropped without dispose() leaves no thread behind for long.
IDLE_EXIT_SECONDS = 30.0


class WalCheckpointer:
    """PASSIVE checkpoints of one SQLite database file, `interval` seconds after writes."""

    def __init__(
        self,
        path: str,
        connect: Callable[[str], sqlite3.Connection],
        *,
        interval: float = DEFAULT_INTERVAL,
        idle_exit: float = IDLE_EXIT_SECONDS,
    ) -> None:
        self._path = path
        self._connect = connect
        self._interval = interval
        self._idle_exit = idle_exit
        self._written = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None  # the running thread's own stop signal
        self._start_lock = threading.Lock()
        self.checkpoints = 0  # checkpoints run, for tests and curiosity

    def written(self) -> None:
        """Something was (or is about to be) committed; any thread may call this."""
        self._written.set()  # before looking at the thread: see `_idle`
        if self._thread is None:
            self._start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def close(self) -> None:
        """Stop the thread after a last checkpoint of what was written; `written()` restarts it."""
        with self._start_lock:
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        if thread is None or stop is None:
            return
        stop.set()
        self._written.set()
        thread.join()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="sqlite-wal-checkpoint", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                if not self._written.wait(self._idle_exit) and self._idle(stop):
                    return
                # Let the writes of the next `interval` join this checkpoint (and let the
                # commit that woke us finish); a stop ends the wait early.
                stop.wait(self._interval)
                self._written.clear()
                conn = conn or self._open()
                if conn is not None:
                    self._checkpoint(conn)
                if stop.is_set():
                    return
        finally:
            if conn is not None:
                conn.close()

    def _idle(self, stop: threading.Event) -> bool:
        """Whether this thread may end for want of writes: not if one came meanwhile
        (`written` sets the event before it looks for a thread)."""
        with self._start_lock:
            if self._stop is not stop:
                return True  # closed meanwhile
            if self._written.is_set():
                return False
            self._thread = self._stop = None
            return True

    def _open(self) -> sqlite3.Connection | None:
        try:
            return self._connect(self._path)
        except sqlite3.Error as exc:
            self._warn(exc)
            return None

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # Harmless for the data (the WAL keeps it); the next write brings another try.
            self._warn(exc)

    def _warn(self, exc: sqlite3.Error) -> None:
        log.warning(
            "wal_checkpoint_failed",
            extra={"event": "wal_checkpoint_failed", "path": self._path, "error": str(exc)},
        )
