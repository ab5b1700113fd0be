"""Reference objects as rows: keys required, everything else read defensively."""

from __future__ import annotations

from amosync.reference.rows import field_rows, loss_reason_rows, pipeline_rows, user_rows


def test_objects_without_a_usable_id_are_skipped() -> None:
    pipes, stages = pipeline_rows(
        [
            {"id": "7", "name": "A", "_embedded": {"statuses": [{"id": 142}, {"id": None}, "x"]}},
            {"name": "no id"},
            {"id": True},
        ]
    )
    assert [7] == [p["id"] for p in pipes]
    assert [(7, 142)] == [(s["pipeline_id"], s["id"]) for s in stages]
    assert [] == user_rows([{"name": "x"}, {"id": 2**64}])
    assert [] == loss_reason_rows([{"id": "1.5"}])


def test_odd_values_become_null() -> None:
    [u] = user_rows([{"id": 1, "name": 5, "rights": "admin"}])
    assert (None, None, None) == (u["name"], u["is_admin"], u["is_active"])
    [f] = field_rows("leads", [{"id": 3, "enums": {"1": "a"}, "sort": "1", "code": None}])
    assert (None, None, None) == (f["enums"], f["sort"], f["code"])
    [p], _ = pipeline_rows([{"id": 1, "is_main": "true", "_embedded": []}])
    assert (False, False) == (p["is_main"], p["is_archive"])
