"""core/stage_events.py: which `lead_status_changed` bodies are usable transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amosync.core.stage_events import StageChange, stage_change, stage_changes

LIMIT = datetime(2030, 1, 1, tzinfo=UTC)
AT = 1_800_000_000


def event(**override: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "01h1tvkcr9hap8jc7t7s0x04zs",
        "type": "lead_status_changed",
        "entity_type": "lead",
        "entity_id": 123,
        "created_by": 9000001,
        "created_at": AT,
        "value_before": [{"lead_status": {"id": 47000001, "pipeline_id": 7000001}}],
        "value_after": [{"lead_status": {"id": 142, "pipeline_id": 7000001}}],
    }
    body.update(override)
    return body


def test_documented_shape() -> None:
    assert StageChange(
        "01h1tvkcr9hap8jc7t7s0x04zs",
        123,
        7000001,
        142,
        7000001,
        47000001,
        datetime.fromtimestamp(AT, UTC),
        9000001,
    ) == stage_change(event(), LIMIT)


def test_other_shapes_amocrm_may_send() -> None:
    """A bare object instead of a one-item list, ids as digit strings, no `entity_type`,
    no (or an unreadable) `value_before`: still the arrival in the `value_after` stage."""
    got = stage_change(
        {
            **event(value_after={"lead_status": {"id": "142", "pipeline_id": "7000001"}}),
            "value_before": None,
            "entity_id": "123",
            "created_by": "robot",
        },
        LIMIT,
    )
    assert got is not None
    assert (123, 7000001, 142, None, None, None) == (
        got.deal_id,
        got.pipeline_id,
        got.status_id,
        got.from_pipeline_id,
        got.from_status_id,
        got.changed_by,
    )
    no_kind = event()
    del no_kind["entity_type"]
    assert stage_change(no_kind, LIMIT) is not None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "lead_status_changed",
        event(type="lead_deleted"),
        event(id=None),
        event(id=123),
        event(id=""),
        event(id="x" * 65),
        event(id="bad id"),
        event(entity_type="contact"),
        event(entity_id=None),
        event(entity_id=-1),
        event(entity_id=2**70),
        event(entity_id=1.5),
        event(created_at=None),
        event(created_at="yesterday"),
        event(created_at=0),
        event(created_at=10**15),
        event(created_at=int(LIMIT.timestamp()) + 1),
        event(value_after=None),
        event(value_after=[]),
        event(value_after="moved"),
        event(value_after=[{"lead_status": {"pipeline_id": 1}}]),
        event(value_after=[{"lead_status": {"id": "won"}}]),
        event(value_after=[{"lead_status": None}] * 100_000),
    ],
)
def test_unusable_bodies_are_none_never_an_error(body: Any) -> None:
    assert stage_change(body, LIMIT) is None


def test_each_event_once() -> None:
    assert 1 == len(stage_changes([event(), event(), event(type="x")], LIMIT))
