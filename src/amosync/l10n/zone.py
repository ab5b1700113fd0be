"""The zone times are shown in: AMOSYNC_TIMEZONE (an IANA name), else this machine's zone.

Only for reading: JSON, logs and the database keep UTC with an offset.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_chosen: tzinfo | None = None


class UnknownZoneError(ValueError):
    pass


def parse_zone(name: str) -> ZoneInfo:
    """`Europe/Moscow` → its zone; anything else raises UnknownZoneError."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UnknownZoneError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Moscow or UTC"
        ) from exc


def machine_zone() -> tzinfo:
    """The zone of this machine: TZ, /etc/localtime's target; the local offset otherwise."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _localtime_name()):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue
    return datetime.now(UTC).astimezone().tzinfo or UTC


def _localtime_name() -> str:
    try:
        target = Path("/etc/localtime").resolve(strict=True)
    except OSError:
        return ""
    parts = target.parts
    return "/".join(parts[parts.index("zoneinfo") + 1 :]) if "zoneinfo" in parts else ""


def configure_zone(name: str | None) -> None:
    global _chosen
    _chosen = parse_zone(name) if name else None


def display_zone() -> tzinfo:
    return _chosen or machine_zone()


def local_when(value: datetime | None) -> str:
    """`2026-12-07 06:30:19 MSK (UTC+03:00)` in the display zone; `—` when unknown."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # the database's naive times are UTC
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(display_zone())
    offset = local.utcoffset()
    if not offset:
        return local.strftime("%Y-%m-%d %H:%M:%S UTC")
    stamp = local.strftime("%z")
    abbrev = local.tzname() or ""
    named = abbrev if abbrev and not abbrev[0] in "+-" else ""
    utc = f"UTC{stamp[:3]}:{stamp[3:]}"
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (f"{named} ({utc})" if named else utc)
