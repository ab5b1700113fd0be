"""The zone times are shown in: AMOSYNC_TIMEZONE (an IANA name), else this machine's zone.

Only for reading: JSON, logs and the database keep UTC with an offset.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amosync.l10n.catalog import N_

_chosen: tzinfo | None = None


class UnknownZoneError(ValueError):
    pass


def parse_zone(name: str) -> ZoneInfo:
    """`Europe/Moscow` → its zone; anything else raises UnknownZoneError."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        message = N_("unknown time zone {name}: use an IANA name such as Europe/Moscow or UTC")
        raise UnknownZoneError(message.format(name=repr(name))) from exc


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


def zone_named(name: str | None) -> tzinfo:
    """The zone of a validated AMOSYNC_TIMEZONE, or this machine's when unset."""
    return parse_zone(name) if name else machine_zone()


def local_when(value: datetime | None, zone: tzinfo | None = None) -> str:
    """`2026-12-07 06:30:19 MSK (UTC+03:00)` in `zone` (default: the display zone, which
    the CLI configures from AMOSYNC_TIMEZONE); `—` when unknown."""
    if value is None:
        return "—"
    if value.tzinfo is None:  # the database's naive times are UTC
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(zone or display_zone())
    offset = local.utcoffset()
    if not offset:
        return local.strftime("%Y-%m-%d %H:%M:%S UTC")
    stamp = local.strftime("%z")
    abbrev = local.tzname() or ""
    named = abbrev if abbrev and abbrev[0] not in "+-" else ""
    utc = f"UTC{stamp[:3]}:{stamp[3:]}"
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (f"{named} ({utc})" if named else utc)
