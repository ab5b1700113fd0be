"""What the head of a refused list answer tells, and where the walk goes when it tells nothing."""

from __future__ import annotations

from amosync.catchup.oversize import read_head
from amosync.catchup.pages import Cursor, _after_unnamed

HEAD = (
    b'{"_page":1,"_links":{"self":{"href":"https://x.amocrm.ru/api/v4/leads?page=1"},'
    b'"next":{"href":"https://x.amocrm.ru/api/v4/leads?page=2"}},"_embedded":{"leads":[{'
    b'"id":"19619","name":"\xd0\xa1\xd0\xb4 \\"big\\", 1","price":0,"loss_reason_id":null,'
    b'"created_at":1700000000,"updated_at":1700000500,"is_deleted":false,'
    b'"custom_fields_values":[{"field_id":1,"values":[{"value":"'
)


def test_the_head_names_the_entity_and_its_dates() -> None:
    found, more = read_head(HEAD, "leads")
    assert {"id": 19619, "price": 0, "created_at": 1700000000, "updated_at": 1700000500} == found
    assert more


def test_a_head_cut_before_the_dates_names_only_the_id() -> None:
    found, _ = read_head(HEAD[: HEAD.index(b'"created_at"')], "leads")
    assert 19619 == found["id"]
    assert "updated_at" not in found


def test_an_unreadable_head_names_nothing_and_assumes_more() -> None:
    assert ({}, True) == read_head(b'{"_page":1,"_li', "leads")
    assert ({}, True) == read_head(HEAD, "contacts")


def test_an_unnamed_skip_never_jumps_a_later_second() -> None:
    # Uniform at a later second: the skipped entity may lie before it, so from its start.
    assert Cursor(200, 1) == _after_unnamed(Cursor(100, 1), [200, 200])
    # Uniform at the start second: the next page of it is safe.
    assert _after_unnamed(Cursor(100, 3), [100, 100]) is None
    # Nothing else on the page: the next page of the same start.
    assert Cursor(100, 4) == _after_unnamed(Cursor(100, 3), [])
