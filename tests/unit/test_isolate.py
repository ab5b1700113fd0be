"""Whose fault a failed store is, decided from what the database itself raised."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy import exc as sa

from amosync.worker.isolate import REFUSED, UNAVAILABLE, UNKNOWN, database_reason, storage_failure


def wrapped(orig: Exception) -> sa.DBAPIError:
    """As SQLAlchemy wraps a driver error raised by a statement."""
    error = sa.DBAPIError.instance("INSERT INTO amocrm_deals …", {"name": "x"}, orig, psycopg.Error)
    assert isinstance(error, sa.DBAPIError)  # a driver error (not a StatementError of ours)
    return error


@pytest.mark.parametrize(
    ("orig", "verdict"),
    [
        (pg.StringDataRightTruncation("value too long for type character varying(255)"), REFUSED),
        (pg.NumericValueOutOfRange("bigint out of range"), REFUSED),
        (pg.UntranslatableCharacter("unsupported Unicode escape sequence"), REFUSED),
        (pg.CheckViolation("new row violates check constraint"), REFUSED),
        (pg.UniqueViolation("duplicate key value"), REFUSED),
        # An OperationalError by class, but about the row: an index entry over 2.7 kB.
        (pg.ProgramLimitExceeded("index row size 3000 exceeds btree maximum"), REFUSED),
        (pg.AdminShutdown("terminating connection due to administrator command"), UNAVAILABLE),
        (pg.DiskFull("could not extend file"), UNAVAILABLE),
        (pg.OutOfMemory("out of memory"), UNAVAILABLE),
        (pg.DeadlockDetected("deadlock detected"), UNAVAILABLE),
        (pg.QueryCanceled("canceling statement due to statement timeout"), UNAVAILABLE),
        (pg.ConnectionFailure("connection failure"), UNAVAILABLE),
        (psycopg.OperationalError("connection failed: Connection refused"), UNAVAILABLE),
        (psycopg.InterfaceError("the connection is closed"), UNAVAILABLE),
        (pg.UndefinedColumn('column "rentprog_id" does not exist'), UNKNOWN),
        (pg.InternalError_("XX000"), UNKNOWN),
    ],
)
def test_postgresql_errors_by_sqlstate(orig: Exception, verdict: str) -> None:
    assert verdict == storage_failure(wrapped(orig))


def sqlite_error(tmp_path: Path, provoke: Callable[[sqlite3.Connection], object]) -> Exception:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    try:
        provoke(conn)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("no error")


def _full(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 3")
    conn.execute("INSERT INTO t (v) VALUES (?)", ["x" * 100_000])


def _read_only(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = 1")
    conn.execute("INSERT INTO t (v) VALUES ('x')")


@pytest.mark.parametrize(
    ("provoke", "verdict"),
    [
        (lambda conn: conn.execute("INSERT INTO t (id, v) VALUES (1, NULL)"), REFUSED),
        (lambda conn: conn.execute("INSERT INTO t (id, v) VALUES ('one', 'x')"), REFUSED),
        (_full, UNAVAILABLE),
        (_read_only, UNAVAILABLE),
        (lambda conn: conn.execute("INSERT INTO missing VALUES (1)"), UNKNOWN),
    ],
)
def test_sqlite_errors_by_result_code(
    tmp_path: Path, provoke: Callable[[sqlite3.Connection], object], verdict: str
) -> None:
    orig = sqlite_error(tmp_path, provoke)
    assert verdict == storage_failure(sa.DBAPIError.instance("INSERT …", {}, orig, sqlite3.Error))


def test_values_the_driver_cannot_encode_are_the_entity_s_fault() -> None:
    with pytest.raises(UnicodeEncodeError) as surrogate:
        "\ud83d".encode()
    assert REFUSED == storage_failure(surrogate.value)
    assert REFUSED == storage_failure(OverflowError("Python int too large to convert"))
    bind = sa.StatementError("bind failed", "INSERT …", {}, TypeError("not serialisable"))
    assert REFUSED == storage_failure(bind)


def test_a_lost_connection_and_a_full_pool_are_unavailable() -> None:
    lost = wrapped(pg.DataError("looks like data"))
    lost.connection_invalidated = True
    assert UNAVAILABLE == storage_failure(lost)
    assert UNAVAILABLE == storage_failure(sa.TimeoutError("QueuePool limit reached"))


def test_the_reason_is_the_database_s_first_line_without_sql() -> None:
    orig = pg.StringDataRightTruncation("value too long for type character varying(255)\nDETAIL")
    reason = database_reason(wrapped(orig))
    assert "StringDataRightTruncation: value too long for type character varying(255)" == reason
    assert len(database_reason(ValueError("x" * 5000))) <= 300
