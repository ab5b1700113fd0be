"""2. Burst economy: 5,000 webhooks about 2,000 distinct leads in about 10 seconds.

Each webhook follows a real change: the lead is changed in the fake amoCRM first, then the
webhook is posted. Measured: API calls the fake saw (per webhook, busiest second, 429s), and
the time from the last webhook until every deal in the database equals amoCRM's copy.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from bench import procs, report
from bench.bodies import lead_update_body
from bench.context import NO_CATCHUP, Context
from bench.dbs import Reader
from bench.fakectl import FakeControl
from bench.loadgen import HttpPool, Sent

TICK = 0.1  # seconds: leads are changed in amoCRM, then their webhooks sent, per tick
CALLS_PER_WEBHOOK_TARGET = 0.01
DRAIN_TARGET_SECONDS = 30.0
CPU_TARGET_MS = 1.0
PG_SLACK = 1.5  # speed targets on PostgreSQL are within 1.5x of SQLite's (not the API counts)


def run(ctx: Context) -> dict[str, Any]:
    leads = int(ctx.pick(2000, 400))
    webhooks = int(ctx.pick(5000, 1000))
    seconds = ctx.pick(10, 2)
    with (
        procs.fake_amocrm(ctx.logs, leads=leads, latency=ctx.latency) as fake,
        ctx.serve_on_fresh_db(fake.url, "burst", NO_CATCHUP) as (srv, url),
    ):
        result = asyncio.run(_burst(ctx, fake, srv, url, webhooks, webhooks / seconds))
    result.update(db=ctx.db, leads=leads, webhooks=webhooks, rate=webhooks / seconds)
    _print(ctx, result)
    return result


async def _burst(
    ctx: Context, fake: procs.Proc, srv: procs.Proc, url: str, webhooks: int, rate: float
) -> dict[str, Any]:
    control_pool = HttpPool(fake.url, 1)
    hooks = HttpPool(srv.url, 32)
    await control_pool.open()
    await hooks.open()
    control = FakeControl(control_pool)
    reader = Reader(url)
    try:
        ids = sorted(await control.leads())
        rng = random.Random(5)  # the same order every run
        order = ids + [rng.choice(ids) for _ in range(webhooks - len(ids))]
        rng.shuffle(order)
        await control.reset()
        cpu_before = srv.cpu_seconds()
        sent = await _send(control, hooks, order, rate)
        last_ack = max(s.sent_wall + s.ack_seconds for s in sent)
        expected = await control.leads()
        drained, correct = await _wait_correct(reader, expected, timeout=ctx.pick(120, 60))
        cpu = srv.cpu_seconds() - cpu_before
        stats = await control.stats()
    finally:
        reader.close()
        await hooks.close()
        await control_pool.close()
    acks = [s.ack_seconds * 1000 for s in sent]
    return {
        "sent_seconds": round(max(s.sent_wall for s in sent) - min(s.sent_wall for s in sent), 2),
        "non_200": sum(s.status != 200 for s in sent),
        "ack_p50_ms": round(report.percentile(acks, 50), 2),
        "ack_p99_ms": round(report.percentile(acks, 99), 2),
        "api_calls": stats["calls"],
        "api_calls_by_path": stats["by_path"],
        "calls_per_webhook": round(stats["calls"] / len(sent), 4),
        "max_calls_in_1s": stats["max_in_1s"],
        "count_429": stats["count_429"],
        "deals_correct": correct,
        "drained_seconds": round(drained - last_ack, 2) if drained else None,
        "cpu_ms_per_event": round(cpu * 1000 / len(sent), 3),
    }


async def _send(control: FakeControl, hooks: HttpPool, order: list[int], rate: float) -> list[Sent]:
    per_tick = max(1, round(rate * TICK))
    path = f"/amocrm/{procs.WEBHOOK_SECRET}"
    tasks: list[asyncio.Task[Sent]] = []
    start = time.perf_counter()
    for n, first in enumerate(range(0, len(order), per_tick)):
        delay = start + n * TICK - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        chunk = order[first : first + per_tick]
        # A lead twice in one tick is changed twice, like two edits in amoCRM.
        stamps = await control.touch(chunk)
        for lead_id in chunk:
            body = lead_update_body(lead_id, stamps[lead_id])
            tasks.append(asyncio.create_task(hooks.post_timed(path, body, lead_id)))
    return list(await asyncio.gather(*tasks))


async def _wait_correct(
    reader: Reader, expected: dict[int, tuple[int, int]], timeout: float
) -> tuple[float | None, int]:
    """Poll until every lead's (price, updated_at) is in the database; (wall time, count)."""
    deadline = time.monotonic() + timeout
    correct = 0
    while True:
        stored = await asyncio.to_thread(reader.deals)
        correct = sum(1 for i, want in expected.items() if i in stored and stored[i][:2] == want)
        if correct == len(expected):
            return time.time(), correct
        if time.monotonic() > deadline:
            return None, correct
        await asyncio.sleep(0.1)


def _print(ctx: Context, r: dict[str, Any]) -> None:
    cpu_target = CPU_TARGET_MS * (PG_SLACK if ctx.db == "postgresql" else 1.0)
    report.table(
        f"Burst ({ctx.db}): {r['webhooks']} webhooks about {r['leads']} leads in "
        f"{r['sent_seconds']} s, API latency {ctx.latency * 1000:.0f} ms",
        ["figure", "value", "target", "verdict"],
        [
            ["API calls", r["api_calls"], "", ""],
            [
                "calls per webhook",
                f"{r['calls_per_webhook']:.4f}",
                f"<= {CALLS_PER_WEBHOOK_TARGET}",
                report.verdict(r["calls_per_webhook"] <= CALLS_PER_WEBHOOK_TARGET),
            ],
            [
                "most calls in any 1 s",
                r["max_calls_in_1s"],
                "<= 7",
                report.verdict(r["max_calls_in_1s"] <= 7),
            ],
            ["429 received", r["count_429"], "0", report.verdict(r["count_429"] == 0)],
            [
                "deals correct",
                f"{r['deals_correct']}/{r['leads']}",
                "all",
                report.verdict(r["deals_correct"] == r["leads"]),
            ],
            [
                "s after last webhook",
                r["drained_seconds"],
                f"<= {DRAIN_TARGET_SECONDS:.0f}",
                report.verdict(
                    r["drained_seconds"] is not None
                    and r["drained_seconds"] <= DRAIN_TARGET_SECONDS
                ),
            ],
            ["webhooks not answered 200", r["non_200"], "0", report.verdict(r["non_200"] == 0)],
            ["ACK p50 / p99 ms", f"{r['ack_p50_ms']} / {r['ack_p99_ms']}", "", ""],
            [
                "serve CPU ms per event",
                r["cpu_ms_per_event"],
                f"<= {cpu_target:g}",
                report.verdict(r["cpu_ms_per_event"] <= cpu_target),
            ],
        ],
    )
