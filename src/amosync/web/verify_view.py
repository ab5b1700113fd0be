"""What the status page's verification section shows (templates/status.html)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from amosync.catchup.verify_select import coverage
from amosync.db.database import Database


async def verify_context(db: Database, last: dict[str, Any] | None) -> dict[str, Any]:
    """`verify` (the stored `verify.last`), its time, and how much of the copy is verified."""
    at = datetime.fromisoformat(str(last["at"])) if last else None
    return {"verify": last, "verify_at": at, "verify_coverage": await coverage(db)}
