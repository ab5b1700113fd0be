"""An API answer mapped to records before the write transaction (core/answer.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amosync.core.answer import future_ids, map_answer, without
from amosync.core.mapping import MappingError, RentProgField
from amosync.core.records import DealContactLink

FIELD = RentProgField(field_id=501)


def lead(lead_id: int, *contacts: tuple[int, bool], rentprog: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": lead_id,
        "name": f"Deal {lead_id}",
        "updated_at": 1_764_000_000,
        "_embedded": {"contacts": [{"id": c, "is_main": main} for c, main in contacts]},
    }
    if rentprog is not None:
        obj["custom_fields_values"] = [{"field_id": 501, "values": [{"value": rentprog}]}]
    return obj


def test_leads_answer_holds_deals_their_links_and_what_did_not_come_back() -> None:
    answer = map_answer(
        "leads", [1, 2, 3], [lead(1, (10, True), (11, False), rentprog="RP-1"), lead(3)], FIELD
    )

    assert ("leads", 2) == (answer.entity, answer.returned)
    assert frozenset({2}) == answer.gone
    assert [(1, "RP-1"), (3, None)] == [(d.id, d.rentprog_id) for d in answer.deals]
    assert {
        1: [DealContactLink(1, 10, True), DealContactLink(1, 11, False)],
        3: [],
    } == answer.links
    assert [] == list(answer.people)


@pytest.mark.parametrize("entity", ["contacts", "companies"])
def test_people_answer_holds_people_and_no_deals(entity: str) -> None:
    answer = map_answer(entity, [7, 8], [{"id": 8, "name": "Ivan"}], FIELD)

    assert [(8, "Ivan")] == [(p.id, p.name) for p in answer.people]
    assert (frozenset({7}), 1) == (answer.gone, answer.returned)
    assert ([], {}) == (list(answer.deals), dict(answer.links))


def test_an_answer_with_nothing_returned_marks_every_id_gone() -> None:
    """amoCRM answers 204 when none of the ids exists: all of them are gone."""
    answer = map_answer("leads", [4, 5], [], FIELD)

    assert (frozenset({4, 5}), 0, []) == (answer.gone, answer.returned, list(answer.deals))


def test_an_unusable_object_fails_the_mapping_before_any_write() -> None:
    with pytest.raises(MappingError, match="id"):
        map_answer("leads", [1], [lead(1), {"id": "x"}], FIELD)


def test_ids_written_as_strings_are_not_missing() -> None:
    answer = map_answer("leads", [1, 2], [{**lead(1), "id": "1"}, lead(2)], FIELD)

    assert (frozenset(), frozenset({1, 2})) == (answer.gone, answer.ids)


@pytest.mark.parametrize("field", ["updated_at", "created_at", "closed_at"])
def test_any_timestamp_beyond_the_limit_is_the_future(field: str) -> None:
    limit = datetime(2026, 1, 1, tzinfo=UTC)
    late = int(limit.timestamp()) + 1
    answer = map_answer("leads", [1, 2], [{**lead(1), field: late}, lead(2)], FIELD)

    future = future_ids(answer, limit)
    kept = without(answer, future)

    assert frozenset({1}) == future
    assert ([2], [2]) == ([d.id for d in kept.deals], list(kept.links))
