"""Several processes running `amosync migrate` at once (a unit's ExecStartPre on every host,
compose --scale) all succeed: one migrates, the others wait and find nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from amosync.db import migrate
from tests.fresh_pg import fresh_pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'amosync.db'}"
        return
    with fresh_pg_database("amosync_migrate") as url:
        yield url


def test_concurrent_migrations_all_succeed(unmigrated_url: str, tmp_path: Path) -> None:
    """Three `amosync migrate` processes started together all exit 0 at the newest schema."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env["AMOSYNC_DATABASE_URL"] = unmigrated_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "amosync", "migrate"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]

    assert [0, 0, 0] == [p.returncode for p in procs], errors
    assert migrate.head_revision() == migrate.database_revision(unmigrated_url)
