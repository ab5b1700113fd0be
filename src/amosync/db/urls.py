"""Turn the one `AMOSYNC_DATABASE_URL` a user writes into the driver URLs we need.

Users write `sqlite:///./amosync.db` or `postgresql://…`; the service runs on asyncio drivers
(aiosqlite, psycopg async) while migrations run on the same drivers' sync side.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from amosync.errors import ConfigError
from amosync.l10n.catalog import N_

_SQLITE = {"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"}
_POSTGRES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg_async"}


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        said = N_("AMOSYNC_DATABASE_URL is not a database URL: {error}")
        raise ConfigError(said.format(error=exc)) from None
    if parsed.drivername not in _SQLITE | _POSTGRES:
        said = N_(
            "AMOSYNC_DATABASE_URL: unsupported database {driver}; "
            "use sqlite:///path.db or postgresql://user@host/db"
        )
        raise ConfigError(said.format(driver=repr(parsed.drivername)))
    if parsed.drivername in _SQLITE and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            N_(
                "AMOSYNC_DATABASE_URL: an in-memory SQLite database would lose every event; "
                "give a file, e.g. sqlite:///./amosync.db"
            )
        )
    return parsed


def async_url(url: str) -> URL:
    """The URL for the service's asyncio engine."""
    parsed = _parse(url)
    if parsed.drivername in _SQLITE:
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed.set(drivername="postgresql+psycopg")


def sync_url(url: str) -> URL:
    """The URL for migrations and other short synchronous work."""
    parsed = _parse(url)
    if parsed.drivername in _SQLITE:
        return parsed.set(drivername="sqlite+pysqlite")
    return parsed.set(drivername="postgresql+psycopg")


def is_sqlite(url: str) -> bool:
    return _parse(url).drivername in _SQLITE


def sqlite_file(url: str) -> Path | None:
    """The SQLite database file, or None for PostgreSQL."""
    parsed = _parse(url)
    if parsed.drivername not in _SQLITE or parsed.database is None:
        return None
    return Path(parsed.database)


def redacted(url: str) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"
