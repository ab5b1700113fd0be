"""parse_webhook: amoCRM webhook bodies to ParsedWebhook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amosync.core.form import FormDecodeError
from amosync.core.webhook import WebhookParseError, parse_webhook

DATA = Path(__file__).parents[1] / "data"

# (entity, action, entity_id, account_id, updated_at, synced) per item, in body order.
Row = tuple[str, str, int | None, int | None, int | None, bool]

# fixture name without "webhook_": (account_subdomain, account_id, items).
# fmt: off
EXPECTED: dict[str, tuple[str | None, int | None, list[Row]]] = {
    "contacts_add_2016_zapier": ("test000002", None, [
        ("contacts", "add", 1112, None, 1456824964, True)]),
    "contacts_add_company_type_2016_zapier": ("test000002", None, [
        ("companies", "add", 1110, None, 1456824655, True)]),
    "contacts_add_cyrillic_2025_etesttask": ("etesttask", 32427762, [
        ("contacts", "add", 37054081, 32427762, 1748289231, True)]),
    "contacts_update_custom_fields_2025_etesttask": ("etesttask", 32427762, [
        ("contacts", "update", 37054081, 32427762, 1748292937, True)]),
    "leads_add_2016_zapier": ("test000002", None, [
        ("leads", "add", 31926529, 10216991, 1456824464, True)]),
    "leads_add_2025_etesttask": ("etesttask", 32427762, [
        ("leads", "add", 32966269, 32427762, 1748268669, True)]),
    "leads_add_2025_unirock": ("unirock", 16700680, [
        ("leads", "add", 30052055, 16700680, 1744532875, True)]),
    "leads_delete_2025_unirock": ("unirock", 16700680, [
        ("leads", "delete", 30052055, 16700680, None, True)]),
    "leads_restore_kommo_docs": (None, None, [
        ("leads", "restore", 15317715, 12345678, 1726572650, True)]),
    "leads_status_2016_zapier": ("test000002", None, [
        ("leads", "status", 31926520, 10216991, 1456820780, True)]),
    "leads_status_custom_fields_2021_irestoremoldova": ("irestoremoldova", 16503244, [
        ("leads", "status", 30267969, 16503244, 1615985846, True)]),
    "leads_status_cyrillic_2018_apfitness": ("apfitness", None, [
        ("leads", "status", 10701093, 17769199, 1539782664, True)]),
    "leads_status_two_items_reconstructed": ("test", 12345678, [
        ("leads", "status", 15318175, 12345678, 1726572758, True),
        ("leads", "status", 15318176, 12345678, 1726572758, True)]),
    "leads_update_2016_zapier": ("test000002", None, [
        ("leads", "update", 31926520, 10216991, 1456820780, True)]),
    "leads_update_2025_unirock": ("unirock", 16700680, [
        ("leads", "update", 30052055, 16700680, 1744532876, True)]),
    "leads_update_custom_fields_2025_etesttask": ("etesttask", 32427762, [
        ("leads", "update", 32966269, 32427762, 1748268812, True)]),
    # A UUID id is not an entity id; message/talk/unsorted are not synced, so no error.
    "message_add_kommo_docs": (None, None, [
        ("message", "add", None, None, None, False)]),
    "talk_add_kommo_docs": (None, None, [
        ("talk", "add", None, None, 1726581298, False)]),
    # `last_modified` is a datetime string here, but `updated_at` is unix seconds.
    "task_add_kommo_docs": (None, None, [
        ("tasks", "add", 1564671, 32720107, 1726578449, False)]),
    "unsorted_add_kommo_docs": (None, None, [
        ("unsorted", "add", None, 32720107, None, False)]),
}
# fmt: on


def rows(body: bytes) -> tuple[str | None, int | None, list[Row]]:
    parsed = parse_webhook(body)
    items = [
        (i.entity, i.action, i.entity_id, i.account_id, i.updated_at, i.synced)
        for i in parsed.items
    ]
    return parsed.account_subdomain, parsed.account_id, items


def reason_of(body: bytes, **limits: int) -> str:
    with pytest.raises(WebhookParseError) as info:
        parse_webhook(body, **limits)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_every_fixture_has_an_expectation() -> None:
    """The table above covers exactly the webhook fixtures on disk."""
    assert sorted(EXPECTED) == sorted(p.stem[8:] for p in DATA.glob("webhook_*.form"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_items(name: str) -> None:
    """Each fixture yields the expected account and items, in body order."""
    assert EXPECTED[name] == rows((DATA / f"webhook_{name}.form").read_bytes())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_payload_is_the_decoded_item(name: str) -> None:
    """An item's payload is the decoded item, untouched."""
    decoded = json.loads((DATA / f"webhook_{name}.json").read_text(encoding="utf-8"))
    expected = [
        item
        for key, block in decoded.items()
        if key != "account"
        for items in block.values()
        for item in items
    ]
    assert expected == [
        i.payload for i in parse_webhook((DATA / f"webhook_{name}.form").read_bytes()).items
    ]


LEAD_NOTE = (
    b"leads[note][0][note][id]=88&leads[note][0][note][note_type]=4"
    b"&leads[note][0][note][element_id]=15317715&leads[note][0][note][element_type]=2"
    b"&leads[note][0][note][text]=hi&leads[note][0][note][account_id]=12345678"
    b"&leads[note][0][note][date_create]=2020-09-01+12:00:00"
    b"&leads[note][0][note][created_at]=1598961600&leads[note][0][note][updated_at]=1598961601"
)


def test_lead_note() -> None:
    """A note stays on its entity with action `note`: id and times come from the inner note."""
    assert (None, None, [("leads", "note", 88, 12345678, 1598961601, False)]) == rows(LEAD_NOTE)
    assert "hi" == parse_webhook(LEAD_NOTE).items[0].payload["note"]["text"]


def test_company_note() -> None:
    """A note on a company (`contacts[note]` with `type=company`) belongs to `companies`."""
    body = b"contacts[note][0][type]=company&contacts[note][0][note][id]=7&account[id]=5"
    assert (None, 5, [("companies", "note", 7, 5, None, False)]) == rows(body)


def test_note_without_a_numeric_id_is_accepted() -> None:
    """Notes are not synced, so a missing note id is no error."""
    assert (None, None, [("leads", "note", None, None, None, False)]) == rows(
        b"leads[note][0][x]=1"
    )


def test_several_blocks_keep_body_order() -> None:
    """Blocks and items come out in body order, whatever the key order."""
    body = (
        b"account[subdomain]=s&account[id]=9&contacts[update][0][id]=3&contacts[update][0][type]=contact"
        b"&leads[add][0][id]=1&leads[add][1][id]=2&task[delete][0][id]=4"
    )
    expected = (
        "s",
        9,
        [
            ("contacts", "update", 3, 9, None, True),
            ("leads", "add", 1, 9, None, True),
            ("leads", "add", 2, 9, None, True),
            ("tasks", "delete", 4, 9, None, False),
        ],
    )
    assert expected == rows(body)


def test_items_with_gapped_indices_come_in_index_order() -> None:
    """When indices are not 0..n-1 the items are still taken in numeric index order."""
    body = b"leads[status][10][id]=3&leads[status][2][id]=2&leads[status][01][id]=1"
    assert [1, 2, 3] == [i.entity_id for i in parse_webhook(body).items]


@pytest.mark.parametrize(
    ("updated_at", "last_modified", "expected"),
    [
        ("1700000002", "1700000001", 1700000002),
        ("0", "1700000001", 1700000001),
        ("17265663a90", "1700000001", 1700000001),
        (None, "1700000001", 1700000001),
        (None, "2024-09-17+13:07:29", None),
        ("%D9%A1%D9%A2", None, None),
        ("1234567890123456789", None, None),
        (None, None, None),
    ],
)
def test_updated_at(
    updated_at: str | None, last_modified: str | None, expected: int | None
) -> None:
    """`updated_at` if positive unix seconds, else `last_modified`, else None."""
    body = "leads[update][0][id]=1"
    if updated_at is not None:
        body += f"&leads[update][0][updated_at]={updated_at}"
    if last_modified is not None:
        body += f"&leads[update][0][last_modified]={last_modified}"
    assert expected == parse_webhook(body.encode()).items[0].updated_at


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"leads[add][0][id]=1&leads[add][0][account_id]=7&account[id]=9", 9),
        (b"leads[add][0][id]=1&leads[add][0][account_id]=7", 7),
        (b"leads[add][0][id]=1&leads[add][0][account_id]=7&account[id]=x", 7),
        (b"leads[add][0][id]=1&leads[add][0][account_id]=x", None),
    ],
)
def test_item_account_id(body: bytes, expected: int | None) -> None:
    """The body's `account[id]` wins; else the item's own numeric `account_id`; else None."""
    assert expected == parse_webhook(body).items[0].account_id


def test_max_items() -> None:
    """500 items per body are accepted, 501 are not."""
    fields = [f"leads[add][{i}][id]={i + 1}" for i in range(501)]
    assert 500 == len(parse_webhook("&".join(fields[:500]).encode()).items)
    assert "more than 500 items in body" == reason_of("&".join(fields).encode())


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "malformed form body: empty body"),
        (b"a=%FF", "malformed form body: invalid UTF-8"),
        (b"account[subdomain]=x&account[id]=1", "no entity items in body"),
        (b"leads=1", "leads: expected {action: items}"),
        (b"leads[0][id]=1", "leads: expected {action: items}"),
        (b"leads[add]=1", "leads[add]: expected a list of items"),
        (b"leads[add][0]=1", "leads[add][0]: item is not an object"),
        (b"leads[add][x][id]=1", "leads[add][x]: item index is not a number"),
        (b"leads[update][0][name]=x", "leads[update][0]: missing or non-numeric id"),
        (b"leads[update][0][id]=%D9%A1", "leads[update][0]: missing or non-numeric id"),
        (b"leads[add][0][id]=1&leads[add][1][id]=", "leads[add][1]: missing or non-numeric id"),
        (
            b"contacts[add][0][id]=abc&contacts[add][0][type]=company",
            "contacts[add][0]: missing or non-numeric id",
        ),
        (b"companies[delete][0][id]=-1", "companies[delete][0]: missing or non-numeric id"),
        (b"account=x&leads[add][0][id]=1", "account: expected an object"),
    ],
)
def test_errors(body: bytes, reason: str) -> None:
    """Unusable bodies raise WebhookParseError naming what is wrong and where."""
    assert reason == reason_of(body)


def test_form_limits_are_passed_through() -> None:
    """max_fields/max_depth reach the form decoder; its error becomes the cause."""
    with pytest.raises(WebhookParseError) as info:
        parse_webhook(b"leads[add][0][id]=1&leads[add][0][x][y]=2", max_depth=3)
    expected = ("malformed form body: key nested deeper than 3 levels", FormDecodeError)
    assert expected == (info.value.reason, type(info.value.__cause__))
    assert "malformed form body: more than 1 fields" == reason_of(b"a=1&b=2", max_fields=1)


def test_error_is_a_value_error() -> None:
    """WebhookParseError is a ValueError whose str() is its reason."""
    error = WebhookParseError("no entity items in body")
    expected = (True, "no entity items in body", "no entity items in body")
    assert expected == (isinstance(error, ValueError), error.reason, str(error))


def test_an_encoded_nul_in_amocrm_data_is_dropped_not_refused() -> None:
    """A lead whose name carries U+0000 (%00) is amoCRM's data, not a broken body: refusing it
    would fail every webhook about that lead (and amoCRM switches a hook off after 100
    failures in 2 h). It is dropped, as from API answers (core/nul.py)."""
    parsed = parse_webhook(b"leads[update][0][id]=7&leads[update][0][name]=Kia%00+Rio")
    assert [(7, "Kia Rio")] == [(i.entity_id, i.payload["name"]) for i in parsed.items]


def test_a_raw_nul_byte_is_still_refused() -> None:
    """A form body never carries an unencoded NUL: that body is broken."""
    assert "NUL byte in body" == reason_of(b"leads[update][0][id]=7&x=\x00")
