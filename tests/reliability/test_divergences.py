"""Issue #18's proof: a copy you can trust, with every divergence kind at once.

One `amosync serve` (worker inside) with **default** settings, the fake amoCRM on a port, a
webhook load, and at the same time: an n8n push dated year 9999 with a changed name, a
300-character RentProg ID, a 100,000-character name, a lone UTF-16 surrogate in one lead's
JSON, ids answered as strings for a while, a lead every list answer leaves out, and
`kill -9` of serve in the middle of a batch followed by a restart. Afterwards every
acknowledged event is applied and `amosync verify --all --json` finds nothing to repair:
the copy is right without the verifier's help.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from amosync.testing import FakeAmoState, rentprog_field
from tests.reliability.harness import (
    AMOSYNC,
    SECRET,
    Fleet,
    LoadGenerator,
    lost_acknowledged,
    query,
    report,
    seed_leads,
    status_counts,
    wait_drained,
)
from tests.reliability.test_shutdown import leased

YEAR_9999 = 253_402_214_400 - 86_400  # 9999-12-30, still a valid datetime
# The target: every acknowledged event applied within this of the restart.
RESUME_WITHIN = 30.0
_SURROGATE = re.compile("[\ud800-\udfff]")


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def add_odd_leads(fake: FakeAmoState) -> dict[str, dict[str, Any]]:
    """The leads amoCRM really can send and the copy must store as they are."""
    odd = {
        "long_rentprog": fake.add_lead(
            id=49_100_001, name="long id", custom_fields_values=[rentprog_field("R" * 300)]
        ),
        "long_name": fake.add_lead(id=49_100_002, name="Аренда " + "я" * 100_000),
        "surrogate": fake.add_lead(
            id=49_100_003,
            name="Kia \ud83d Rio",
            custom_fields_values=[rentprog_field("RP-\udc00")],
        ),
        "hidden": fake.add_lead(id=49_100_004, name="Listed nowhere"),
        "pushed": fake.add_lead(id=49_100_005, name="Real name"),
    }
    # Every list answer leaves it out; only `GET /api/v4/leads/{id}` returns it.
    fake.hidden_from_lists.add(49_100_004)
    return odd


def push_far_future(url: str, lead: dict[str, Any]) -> None:
    """What n8n would forward: the lead with a changed name, dated year 9999."""
    forged = {**lead, "name": "Forged by n8n", "updated_at": YEAR_9999}
    answer = httpx.post(
        f"{url}/amocrm/process-webhook",
        content=json.dumps(forged),
        headers={"Content-Type": "application/json", "X-Amosync-Secret": SECRET},
        timeout=5,
    )
    assert 200 == answer.status_code, answer.text


def stored_deals(db_url: str) -> dict[int, tuple[Any, ...]]:
    rows = query(
        db_url,
        "SELECT id, name, price, status_id, is_deleted, rentprog_id, updated_at FROM amocrm_deals",
    )
    return {int(r[0]): (r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows}


def expected_deals(fake: FakeAmoState, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """The fake's leads as the copy must hold them (a lone surrogate becomes U+FFFD)."""
    want: dict[int, tuple[Any, ...]] = {}
    for lead_id in ids:
        fields = fake.leads[lead_id].fields
        rentprog = None
        for cf in fields.get("custom_fields_values") or []:
            if cf.get("field_name") == "RentProg ID":
                rentprog = cf["values"][0]["value"]
        name, rentprog = (_replaced(v) for v in (fields["name"], rentprog))
        want[lead_id] = (name, fields["price"], fields["status_id"], False, rentprog)
    return want


def _replaced(value: str | None) -> str | None:
    return None if value is None else _SURROGATE.sub("\ufffd", value)


@pytest.mark.slow
def test_every_divergence_kind_at_once_leaves_a_copy_verify_finds_right(
    db_url: str, fake_on_port: tuple[FakeAmoState, str], tmp_path: Path
) -> None:
    fake, fake_url = fake_on_port
    plain = seed_leads(fake, 49_000_001, 30)
    odd_leads = add_odd_leads(fake)
    odd = {key: int(lead["id"]) for key, lead in odd_leads.items()}
    lead_ids = plain + list(odd.values())
    fleet = Fleet(db_url, fake_url, tmp_path, tuned=False)  # the defaults, lease 20 s
    try:
        serve = fleet.web("serve", worker=True)
        load = LoadGenerator([serve.url], lead_ids, rate=25, change_every=6, fake=fake)
        load.start()
        push_far_future(serve.url, odd_leads["pushed"])

        time.sleep(1.5)
        fake.string_ids = True  # ids as JSON strings ("49000001") for a while
        strings_from = fake.clock()
        time.sleep(3.0)
        fake.string_ids = False
        strings_until = fake.clock()

        fake.latency_seconds = 3.0  # the next batch is still being fetched at the kill
        slow_from = time.time()
        caught: list[tuple[int, str]] = []

        def slow_batch_claimed() -> bool:
            # A batch claimed before the latency rose may finish between two queries, so the
            # rows that satisfy the wait are the ones counted, and only a batch leased after
            # `slow_from` (its fetch takes 3 s) is sure to be in flight at the kill.
            caught[:] = leased(db_url, claimed_after=slow_from)
            return bool(caught)

        wait_until(slow_batch_claimed, 20, "a batch is claimed")
        claimed = len(caught)
        serve.kill9()
        fake.latency_seconds = 0.0
        restarted = time.monotonic()
        serve.start()
        time.sleep(3.0)  # webhooks keep coming after the restart
        result = load.stop()
        wait_drained(db_url, timeout=RESUME_WITHIN + 15)
        resumed = time.monotonic() - restarted
    finally:
        fleet.stop()

    fake.string_ids = True  # again while the verifier asks: the same ids, nothing unconfirmed
    verified = subprocess.run(
        [*AMOSYNC, "verify", "--all", "--json"],
        env=fleet.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    counts = status_counts(db_url)
    n8n = query(db_url, "SELECT entity_id, status FROM amocrm_webhook_events WHERE source = 'n8n'")
    stored = stored_deals(db_url)
    dialect = db_url.split(":", 1)[0]
    assert 0 == verified.returncode, verified.stdout + verified.stderr
    outcome = json.loads(verified.stdout)
    report(
        f"divergences-{dialect}",
        posted=result.posted,
        acked=len(result.acked),
        statuses=counts,
        claimed_at_kill=claimed,
        restart_to_drained_seconds=round(resumed, 1),
        api_calls=len(fake.calls("/api/v4/")),
        verify={k: outcome[k] for k in ("checked", "diverged", "repaired", "unrepaired", "calls")},
    )

    # Every acknowledged webhook is in the inbox and applied; nothing failed, nothing waits.
    assert {} == lost_acknowledged(db_url, result)
    assert 0 == result.gave_up
    assert set(counts) <= {"done", "ignored"}, counts
    assert [(odd["pushed"], "done")] == [(int(i), s) for i, s in n8n]
    assert claimed > 0
    # The odd answers were really given: lists with string ids, the hidden lead alone.
    assert [c for c in fake.calls("/api/v4/leads") if strings_from <= c.at <= strings_until]
    assert fake.calls(f"/api/v4/leads/{odd['hidden']}")
    assert resumed <= RESUME_WITHIN, f"drained {resumed:.1f} s after the restart"

    # The copy equals amoCRM: each odd value stored whole, the n8n push's name and date not.
    want = expected_deals(fake, lead_ids)
    got = {i: stored[i][:5] for i in lead_ids if i in stored}
    assert want == got
    assert "R" * 300 == stored[odd["long_rentprog"]][4]
    assert "Kia \ufffd Rio" == stored[odd["surrogate"]][0]
    assert "Real name" == stored[odd["pushed"]][0]
    assert not [row for row in stored.values() if str(row[5]).startswith("9999")]

    # And the verifier, asking amoCRM for every stored deal, finds nothing to repair.
    assert len(stored) == outcome["checked"], outcome
    assert (0, 0, 0) == (outcome["diverged"], outcome["repaired"], outcome["unrepaired"])
    assert 0 == outcome["unconfirmed"], outcome
