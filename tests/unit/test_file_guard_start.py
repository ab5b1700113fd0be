"""A start on a missing SQLite file: created on a first start, refused when traces say the
file existed before, unless `--create` (db/file_guard.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from amosync.db.file_guard import (
    MissingDatabase,
    check_before_open,
    database_file,
    marker_path,
    write_marker,
)


def test_first_start_in_an_empty_directory_is_allowed(tmp_path: Path) -> None:
    check_before_open(tmp_path / "amosync.db", create=False)  # nothing raised


@pytest.mark.parametrize("trace", ["-amosync", "-wal", "-shm", "-journal"])
def test_missing_file_with_a_trace_is_refused(tmp_path: Path, trace: str) -> None:
    db = tmp_path / "amosync.db"
    (tmp_path / f"amosync.db{trace}").write_text("x")

    with pytest.raises(MissingDatabase, match="--create") as raised:
        check_before_open(db, create=False)

    assert str(db) in str(raised.value)
    assert f"amosync.db{trace}" in str(raised.value)


def test_create_moves_stale_sqlite_files_aside(tmp_path: Path) -> None:
    """A WAL without its database would be replayed into the new file: it is kept, renamed."""
    db = tmp_path / "amosync.db"
    db.write_text("old")
    write_marker(db)
    (tmp_path / "amosync.db-wal").write_text("stale wal")
    db.unlink()

    check_before_open(db, create=True)

    assert not marker_path(db).exists()
    assert not (tmp_path / "amosync.db-wal").exists()
    (aside,) = tmp_path.glob("amosync.db-wal.orphaned-*")
    assert "stale wal" == aside.read_text()


def test_marker_is_written_only_next_to_an_existing_file(tmp_path: Path) -> None:
    db = tmp_path / "amosync.db"
    write_marker(db)
    assert not marker_path(db).exists()
    db.write_text("")
    write_marker(db)
    assert marker_path(db).exists()


def test_database_file_of_urls() -> None:
    assert Path("./amosync.db") == database_file("sqlite:///./amosync.db")
    assert None is database_file("postgresql://u@h/db")


def test_an_empty_file_where_the_marker_says_a_database_was_is_refused(tmp_path: Path) -> None:
    """SQLite created an empty file at the path of a deleted database (a connection opened
    it): the next start refuses it like a missing file; a real database passes."""
    db = tmp_path / "amosync.db"
    db.write_text("")
    write_marker(db)
    sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").close()  # a header, no tables

    with pytest.raises(MissingDatabase, match="is empty"):
        check_before_open(db, create=False)
    check_before_open(db, create=True)  # told to: allowed

    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    check_before_open(db, create=False)
