"""`backfill --history`'s progress display: a bar of days on a terminal, one line otherwise."""

from __future__ import annotations

import sys

import pytest

from amosync.cli.sync import HISTORY, _ProgressDisplay


def test_terminal_bar_counts_days_and_stage_changes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    with _ProgressDisplay((HISTORY,)) as progress:
        progress.days(12, 30, 90, False)
        task = progress._progress.tasks[0]
        assert (30, 90, "12 stage changes") == (task.completed, task.total, task.fields["note"])
        progress.waiting("budget", 61.0)
        assert task.fields["note"].startswith("waiting 61 s")
        progress.days(15, 90, 90, True)
    assert "history" in capsys.readouterr().out


def test_without_a_terminal_one_line_when_done(capsys: pytest.CaptureFixture[str]) -> None:
    with _ProgressDisplay((HISTORY,)) as progress:
        progress.days(3, 10, 90, False)
        progress.days(7, 90, 90, True)
    assert "history: 7 stage changes stored, done\n" == capsys.readouterr().out
