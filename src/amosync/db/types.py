"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
# JSONB on PostgreSQL so other services can index and query into payloads.
Json: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")


def outside_text(sqlite_length: int) -> TypeEngine[str]:
    """Text whose length a sender decides (webhook entity/action names, request ids).

    TEXT on PostgreSQL, which enforces VARCHAR lengths: a 33-character entity name failed the
    insert there and the webhook was answered 503 while SQLite answered 200. SQLite never
    enforces a length, so its column keeps the VARCHAR it was created with: changing it would
    rebuild the whole inbox table on upgrade, for nothing.
    """
    return String(sqlite_length).with_variant(Text(), "postgresql")


def aware(value: datetime | str | None) -> datetime | None:
    """A timestamp read around `UTCDateTime`, made aware as it would have made it.

    min()/max() and other aggregates over a SQLite text column come back as plain text or a
    naive datetime, not through the column type; PostgreSQL's are already aware.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every database.

    SQLite has no time zone type: values are stored as naive UTC text in one fixed format,
    so comparisons in SQL (lease expiry, newer-wins upserts) stay correct as text.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
