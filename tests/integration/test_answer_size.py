"""An amoCRM answer over `max_answer_bytes` is refused while it streams in, not held whole."""

from __future__ import annotations

import tracemalloc

import httpx
import pytest

from amosync.amocrm import AmoClient, LongLivedToken, SlidingWindowLimiter
from amosync.amocrm.client import HEAD_BYTES, MAX_ANSWER_BYTES
from amosync.errors import AnswerTooLarge
from amosync.settings import Settings
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, create_fake_amocrm, run_fake_in_thread

MIB = 1024 * 1024


def client_for(
    base: str, fake: FakeAmoState | None = None, *, max_answer_bytes: int = MAX_ANSWER_BYTES
) -> AmoClient:
    transport = httpx.ASGITransport(app=create_fake_amocrm(fake)) if fake else None
    return AmoClient(
        base,
        LongLivedToken(DEFAULT_TOKEN),
        SlidingWindowLimiter(50),
        transport=transport,
        backoff_base=0.01,
        max_answer_bytes=max_answer_bytes,
    )


async def test_a_declared_length_over_the_cap_is_refused_after_its_head_and_not_retried() -> None:
    fake = FakeAmoState(rate_limit_rps=None)
    lead = fake.add_lead(name="b" * 100_000)
    client = client_for("https://testaccount.amocrm.ru", fake, max_answer_bytes=20_000)

    with pytest.raises(AnswerTooLarge, match="larger than 20000 bytes") as refused:
        await client.fetch_by_ids("leads", [lead["id"]])

    assert refused.value.limit == 20_000
    # Only the head is read, and kept: it names the lead (catchup/oversize.py reads it).
    assert len(refused.value.head) == HEAD_BYTES
    assert f'"id":{lead["id"]},'.encode() in refused.value.head
    assert 1 == len(fake.calls("/api/v4/leads"))  # a size is not a transient fault
    await client.aclose()


async def test_a_streamed_answer_is_cut_off_at_the_cap() -> None:
    """No Content-Length (a proxy compressing on the fly): reading stops past the cap, so the
    64 MiB answer is never in memory (the fake makes it 64 KiB at a time)."""
    fake = FakeAmoState(rate_limit_rps=None, answer_padding=64 * MIB)
    lead = fake.add_lead(name="padded")
    with run_fake_in_thread(fake) as base:
        client = client_for(base, max_answer_bytes=MIB)
        tracemalloc.start()
        try:
            with pytest.raises(AnswerTooLarge):
                await client.fetch_by_ids("leads", [lead["id"]])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await client.aclose()
    assert peak < 8 * MIB


async def test_the_default_cap_reads_a_large_streamed_answer_whole() -> None:
    assert 32 * MIB == Settings().api_max_answer_bytes
    fake = FakeAmoState(rate_limit_rps=None, answer_padding=8 * MIB)
    lead = fake.add_lead(name="padded")
    with run_fake_in_thread(fake) as base:
        client = client_for(base)
        [found] = await client.fetch_by_ids("leads", [lead["id"]])
        await client.aclose()
    assert found["name"] == "padded"
