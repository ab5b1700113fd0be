"""Storage made to fail for real, for the tests of what the service does then: a small disk
filled to the last byte, a PostgreSQL database turned read-only."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL


@contextmanager
def small_disk(where: Path, size_kb: int) -> Iterator[Path]:
    """A tmpfs of `size_kb` mounted at `where`, to fill up without touching the machine's
    disks (needs root: skipped with the reason otherwise)."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextmanager
def disk_full(disk: Path) -> Iterator[None]:
    """Write a file until the disk is full; removing it on exit frees the space again."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        assert errno.ENOSPC == _write_until_error(out)
    try:
        yield
    finally:
        filler.unlink()


def _write_until_error(out: BinaryIO) -> int | None:
    try:
        while True:  # unbuffered: a short write takes the last bytes, the next one fails
            out.write(b"\0" * 65536)
    except OSError as exc:
        return exc.errno


@contextmanager
def postgres_read_only(db_url: str) -> Iterator[None]:
    """The database turns read-only (a replica promoted the wrong way round, a full disk
    guard): new sessions may read but not write, and open sessions are cut, also when it is
    writable again (so none keeps the read-only setting)."""
    name = make_url(db_url).database
    assert name is not None
    database = sql.Identifier(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(database)
        )
        cut_sessions(admin, name)
        try:
            yield
        finally:
            admin.execute(
                sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(database)
            )
            cut_sessions(admin, name)


def cut_sessions(admin: psycopg.Connection[tuple[object, ...]], database: str) -> None:
    """End every session on `database` but the admin's own."""
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (database,),
    )
