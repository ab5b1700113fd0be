"""Issue #19: the SQLite database (it holds the OAuth refresh token) is private to its owner."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from amosync.db.database import Database
from amosync.db.file_mode import check_database_file
from amosync.errors import ConfigError
from tests.e2e.test_cli import AMOSYNC, env_for


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_new_database_and_its_wal_and_shm_are_created_0600(tmp_path: Path) -> None:
    """Under the usual umask 022 a new database, -wal and -shm are all 0600."""
    path = tmp_path / "new.db"
    old = os.umask(0o022)
    try:
        database = Database.open(f"sqlite:///{path}")
        async with database.write() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            files = {p.name: mode(p) for p in tmp_path.iterdir()}
        await database.dispose()
    finally:
        os.umask(old)

    assert {"new.db": 0o600, "new.db-wal": 0o600, "new.db-shm": 0o600} == files


def test_migrate_tightens_a_readable_database_it_owns_with_a_warning(tmp_path: Path) -> None:
    """An existing 0644 database and -wal owned by this user become 0600 at start-up."""
    path = tmp_path / "old.db"
    for name in ("old.db", "old.db-wal"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    env = env_for(f"sqlite:///{path}", "http://127.0.0.1:9")

    done = subprocess.run([*AMOSYNC, "migrate"], env=env, capture_output=True, timeout=60)

    assert 0 == done.returncode, done.stderr.decode()
    assert 0o600 == mode(path)
    wal = tmp_path / "old.db-wal"  # SQLite deletes it when the last connection closes
    assert not wal.exists() or 0o600 == mode(wal)
    assert "database_file_tightened" in done.stderr.decode() + done.stdout.decode()


def test_a_shared_file_is_kept_when_asked(tmp_path: Path) -> None:
    """AMOSYNC_ALLOW_SHARED_DB_FILE=1 leaves a 0640 database as it is."""
    path = tmp_path / "shared.db"
    path.write_bytes(b"")
    path.chmod(0o640)
    env = env_for(f"sqlite:///{path}", "http://127.0.0.1:9", AMOSYNC_ALLOW_SHARED_DB_FILE="1")

    done = subprocess.run([*AMOSYNC, "migrate"], env=env, capture_output=True, timeout=60)

    assert 0 == done.returncode, done.stderr.decode()
    assert 0o640 == mode(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_readable_file_of_another_user_is_refused_saying_what_to_run(tmp_path: Path) -> None:
    """serve exits 2 naming the file, the chmod to run and the setting; the file is untouched."""
    path = tmp_path / "theirs.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    os.chown(path, 65534, 65534)
    env = env_for(f"sqlite:///{path}", "http://127.0.0.1:9")

    done = subprocess.run([*AMOSYNC, "serve"], env=env, capture_output=True, timeout=60)
    err = done.stderr.decode()

    assert 2 == done.returncode, err
    assert f"chmod 600 {path}" in err
    assert "AMOSYNC_ALLOW_SHARED_DB_FILE=1" in err
    assert 0o644 == mode(path)


def test_check_refuses_a_file_owned_by_someone_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The function itself, for non-root runs: /etc/passwd stands for a file of another
    user when we are not root; a private file passes silently."""
    private = tmp_path / "p.db"
    private.write_bytes(b"")
    private.chmod(0o600)
    shm = tmp_path / "p.db-shm"
    shm.write_bytes(b"")
    shm.chmod(0o664)
    with caplog.at_level(logging.WARNING):
        check_database_file(private, allow_shared=False)
    assert (0o600, 0o600) == (mode(private), mode(shm))
    assert [str(shm)] == [getattr(r, "path", None) for r in caplog.records]
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="chmod 600 /etc/passwd"):
            check_database_file(Path("/etc/passwd"), allow_shared=False)
