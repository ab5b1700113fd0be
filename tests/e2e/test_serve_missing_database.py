"""`amosync serve` never replaces a deleted SQLite database with an empty one silently."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from tests.e2e.test_cli import AMOSYNC, free_port, wait_http


def live_then_stop(proc: subprocess.Popen[bytes], port: str) -> int:
    try:
        wait_http(f"http://127.0.0.1:{port}/health/live", proc)
        return httpx.get(f"http://127.0.0.1:{port}/health/live").status_code
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def test_missing_database_that_existed_is_refused_unless_create(tmp_path: Path) -> None:
    """First start in an empty directory: the file and its marker are created. After the
    file is deleted, serve exits 1 naming it and `--create`; with `--create` it starts."""
    first_port = str(free_port())
    first = _serve(tmp_path, first_port)
    first_live = live_then_stop(first, first_port)
    created = sorted(p.name for p in tmp_path.iterdir())
    for name in ("amosync.db", "amosync.db-wal", "amosync.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)

    refused = _serve(tmp_path, str(free_port()))
    refused_output = refused.communicate(timeout=60)[0].decode()
    recreated_after_refusal = (tmp_path / "amosync.db").exists()
    again_port = str(free_port())
    again = _serve(tmp_path, again_port, "--create")
    again_live = live_then_stop(again, again_port)

    assert 200 == first_live
    assert {"amosync.db", "amosync.db-amosync"} <= set(created)
    assert 1 == refused.returncode, refused_output
    assert "--create" in refused_output
    assert "amosync.db is missing" in refused_output
    assert not recreated_after_refusal
    assert 200 == again_live
    assert (tmp_path / "amosync.db").exists()


def _serve(tmp_path: Path, port: str, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(AMOSYNC_PORT=port, AMOSYNC_LOG_FORMAT="json")
    return subprocess.Popen(
        [*AMOSYNC, "serve", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
