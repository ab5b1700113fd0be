"""The bench's disk probe (bench/disk.py) times real fdatasyncs and cleans up after itself."""

from __future__ import annotations

import time
from pathlib import Path

from bench.disk import SLOW_MS, FsyncProbe


def test_probe_times_real_fsyncs_and_removes_its_file(tmp_path: Path) -> None:
    with FsyncProbe(tmp_path, interval=0.005) as probe:
        deadline = time.monotonic() + 5
        while len(probe.latencies_ms) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(tmp_path.iterdir()), "the probe writes in the directory it is given"
    summary = probe.summary()
    assert summary["fsyncs"] >= 5
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert list(tmp_path.iterdir()) == []


def test_summary_counts_slow_fsyncs(tmp_path: Path) -> None:
    probe = FsyncProbe(tmp_path)
    probe.latencies_ms = [0.2] * 97 + [SLOW_MS - 0.01, SLOW_MS, 250.0]
    summary = probe.summary()
    assert (summary["fsyncs"], summary["p50_ms"], summary["max_ms"]) == (100, 0.2, 250.0)
    assert summary["slow"] == 2  # SLOW_MS itself counts, just under it does not


def test_a_probe_can_run_again(tmp_path: Path) -> None:
    probe = FsyncProbe(tmp_path, interval=0.005)
    for _ in range(2):
        with probe:
            time.sleep(0.05)
        assert probe.summary()["fsyncs"] >= 1
