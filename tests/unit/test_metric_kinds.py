"""`amosync_webhook_items_received` keeps few series whatever entity/action names arrive."""

from __future__ import annotations

from amosync import metrics
from amosync.core.webhook import parse_webhook


def series(outcome: str = "stored") -> set[tuple[str, str]]:
    return {
        (s.labels["entity"], s.labels["action"])
        for family in metrics.REGISTRY.collect()
        if family.name == "amosync_webhook_items_received"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["outcome"] == outcome
    }


def test_invented_kinds_are_counted_as_other() -> None:
    """2,000 invented entity kinds (each a new series before) add one `other` series."""
    for n in range(2000):
        metrics.webhook_stored(parse_webhook(f"kind{n}[act{n}][0][id]={n}".encode()).items)
    invented = {pair for pair in series() if pair[0].startswith("kind")}
    assert set() == invented
    assert ("other", "other") in series()
    assert len(series()) < 100
    total = metrics.REGISTRY.get_sample_value(
        "amosync_webhook_items_received_total",
        {"entity": "other", "action": "other", "outcome": "stored"},
    )
    assert total is not None
    assert total >= 2000


def test_real_amocrm_kinds_keep_their_names() -> None:
    body = (
        b"leads[status][0][id]=1&contacts[update][0][id]=2&contacts[add][0][id]=3"
        b"&contacts[add][0][type]=company&task[add][0][id]=4&unsorted[delete][0][id]=5"
        b"&message[add][0][id]=6&talk[update][0][id]=7&customers[responsible][0][id]=8"
        b"&catalogs[add][0][id]=9&leads[note][0][note][id]=10&leads[restore][0][id]=11"
        b"&leads[made_up][0][id]=12"
    )
    metrics.webhook_stored(parse_webhook(body).items)
    assert {
        ("leads", "status"),
        ("contacts", "update"),
        ("companies", "add"),
        ("tasks", "add"),
        ("unsorted", "delete"),
        ("message", "add"),
        ("talk", "update"),
        ("customers", "responsible"),
        ("catalogs", "add"),
        ("leads", "note"),
        ("leads", "restore"),
        ("leads", "other"),
    } <= series()
