"""Starting the processes a run measures, and reading their CPU time and memory from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from amosync.testing import DEFAULT_TOKEN, RENTPROG_FIELD_ID

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
WEBHOOK_SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a local benchmark's path segment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without AMOSYNC_* (a developer's .env must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(extra)
    return env


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the ")" the fields start at `state` (field 3): utime is 14, stime is 15.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mb(self) -> float:
        pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return pages * PAGE_SIZE / 1e6


def _wait_ready(proc: subprocess.Popen[bytes], url: str, name: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own local URL
                return
        except urllib.error.HTTPError:
            return  # it answers (e.g. /health 503 while nothing is synced yet): it is up
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start within 60 s (log: {log})")


@contextlib.contextmanager
def started(
    name: str, argv: Sequence[str], env: dict[str, str], ready_url: str, base_url: str, logs: Path
) -> Iterator[Proc]:
    """Run `argv` until the block ends; SIGTERM (SIGKILL after 15 s) on the way out."""
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        _wait_ready(popen, ready_url, name, log)
        yield Proc(name, popen, base_url)
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def fake_amocrm(
    logs: Path, *, leads: int, latency: float
) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "bench.fake_amocrm", "--port", str(port)]
    argv += ["--leads", str(leads), "--latency", str(latency)]
    return started("fake-amocrm", argv, clean_env(), f"{url}/_bench/stats", url, logs)


def baseline(logs: Path) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "bench.baseline", "--port", str(port)]
    return started("baseline", argv, clean_env(), url, url, logs)


def durable_reference(logs: Path, database: Path) -> contextlib.AbstractContextManager[Proc]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "bench.durable_reference", "--port", str(port)]
    argv += ["--database", str(database)]
    return started("durable-reference", argv, clean_env(), url, url, logs)


def serve_env(
    database_url: str, fake_url: str, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    return clean_env(
        **(extra or {}),
        AMOSYNC_DATABASE_URL=database_url,
        AMOSYNC_HOST="127.0.0.1",
        AMOSYNC_PORT=str(port),
        AMOSYNC_AMOCRM_BASE_URL=fake_url,
        AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
        AMOSYNC_RENTPROG_FIELD_ID=str(RENTPROG_FIELD_ID),
        AMOSYNC_WEBHOOK_SECRET=WEBHOOK_SECRET,
        AMOSYNC_LOG_FORMAT="json",
    )


def migrate(database_url: str, fake_url: str, logs: Path) -> None:
    """`amosync migrate`, as a user runs it before serving on PostgreSQL."""
    env = serve_env(database_url, fake_url, 3000)  # migrate does not listen
    log = logs / "migrate.log"
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-m", "amosync", "migrate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            check=False,
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"amosync migrate exited with {done.returncode}:\n{tail}")


def serve(
    logs: Path,
    database_url: str,
    fake_url: str,
    name: str = "serve",
    extra_env: dict[str, str] | None = None,
) -> contextlib.AbstractContextManager[Proc]:
    """The real `amosync serve` (web + worker in one process), as a user starts it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "amosync", "serve"]
    env = serve_env(database_url, fake_url, port, extra_env)
    return started(name, argv, env, f"{url}/health", url, logs)


def webhook_url(serve_proc: Proc) -> str:
    return f"{serve_proc.url}/amocrm/{WEBHOOK_SECRET}"
