"""Every producer of inbox rows goes through `inbox.rows.event_row`: one shape for all."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import amosync
from amosync.core.events import WebhookItem
from amosync.db.tables import webhook_events
from amosync.inbox.rows import event_row
from amosync.inbox.store import IGNORED, PENDING
from amosync.webhook.rows import inbox_rows

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COLUMNS = {c.name for c in webhook_events.columns if not c.primary_key}


def test_a_row_names_every_column_of_the_table() -> None:
    row = event_row(
        now=NOW, source="worker", entity="contacts", action="linked", entity_id=7, payload={}
    )
    assert set(row) == COLUMNS
    assert row["status"] == PENDING
    assert row["processed_at"] is None
    assert row["available_at"] == NOW


def test_a_kind_we_do_not_sync_is_kept_as_ignored_and_processed() -> None:
    item = WebhookItem("tasks", "add", 5, 1, {"id": "5"}, 100)
    assert not item.synced
    [row] = inbox_rows([item], now=NOW, source="webhook", request_id="r1")
    assert set(row) == COLUMNS
    assert (row["status"], row["processed_at"], row["request_id"]) == (IGNORED, NOW, "r1")


def test_no_module_writes_an_inbox_row_by_hand() -> None:
    """A dict literal with the inbox's own keys outside inbox/rows.py is a second way."""
    package = Path(amosync.__file__).parent
    by_hand = []
    for path in package.rglob("*.py"):
        if path == package / "inbox" / "rows.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if {"received_at", "available_at", "payload"} <= keys:
                    by_hand.append(f"{path.relative_to(package)}:{node.lineno}")
    assert by_hand == []
