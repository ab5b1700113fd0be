"""3. Freshness: a steady 20 webhooks/s for 60 s; how long until each change is in the table.

Each webhook is about a lead nobody else touches in the run, changed in the fake amoCRM
just before the webhook is sent. The latency of one webhook is the deal row's `synced_at`
(stamped by the worker in the transaction that writes the row) minus the moment the
webhook was sent; both clocks are this machine's wall clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import procs, report
from bench.bodies import lead_update_body
from bench.context import NO_CATCHUP, Context
from bench.dbs import Reader
from bench.fakectl import FakeControl
from bench.loadgen import HttpPool, Sent

RATE = 20.0
P50_TARGET_MS = 300.0
P99_TARGET_MS = 1000.0
PG_SLACK = 1.5


def run(ctx: Context) -> dict[str, Any]:
    seconds = ctx.pick(60, 10)
    count = int(RATE * seconds)
    with (
        procs.fake_amocrm(ctx.logs, leads=count, latency=ctx.latency) as fake,
        ctx.serve_on_fresh_db(fake.url, "fresh", NO_CATCHUP) as (srv, url),
    ):
        result = asyncio.run(_fresh(fake, srv, url, count))
    slack = PG_SLACK if ctx.db == "postgresql" else 1.0
    result.update(db=ctx.db, rate=RATE, seconds=seconds, api_latency_ms=ctx.latency * 1000)
    result["targets"] = {
        "p50_ms": {
            "value": result["p50_ms"],
            "target": f"<= {P50_TARGET_MS * slack:.0f}",
            "met": result["p50_ms"] <= P50_TARGET_MS * slack,
        },
        "p99_ms": {
            "value": result["p99_ms"],
            "target": f"<= {P99_TARGET_MS * slack:.0f}",
            "met": result["p99_ms"] <= P99_TARGET_MS * slack,
        },
    }
    t = result["targets"]
    report.table(
        f"Freshness ({ctx.db}): {RATE:.0f} webhooks/s for {seconds:.0f} s, "
        f"API latency {ctx.latency * 1000:.0f} ms",
        ["figure", "value", "target", "verdict"],
        [
            [
                "webhook → row p50 ms",
                result["p50_ms"],
                t["p50_ms"]["target"],
                report.verdict(t["p50_ms"]["met"]),
            ],
            [
                "webhook → row p99 ms",
                result["p99_ms"],
                t["p99_ms"]["target"],
                report.verdict(t["p99_ms"]["met"]),
            ],
            ["webhook → row max ms", result["max_ms"], "", ""],
            [
                "rows fresh",
                f"{result['fresh']}/{count}",
                "all",
                report.verdict(result["fresh"] == count),
            ],
            ["API calls", result["api_calls"], "", ""],
        ],
    )
    return result


async def _fresh(fake: procs.Proc, srv: procs.Proc, url: str, count: int) -> dict[str, Any]:
    control_pool = HttpPool(fake.url, 1)
    hooks = HttpPool(srv.url, 4)
    await control_pool.open()
    await hooks.open()
    control = FakeControl(control_pool)
    reader = Reader(url)
    path = f"/amocrm/{procs.WEBHOOK_SECRET}"
    try:
        ids = sorted(await control.leads())[:count]
        await control.reset()
        tasks: list[asyncio.Task[Sent]] = []
        start = time.perf_counter()
        for n, lead_id in enumerate(ids):
            delay = start + n / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = (await control.touch([lead_id]))[lead_id]
            body = lead_update_body(lead_id, stamp)
            tasks.append(asyncio.create_task(hooks.post_timed(path, body, lead_id)))
        sent = await asyncio.gather(*tasks)
        expected = await control.leads()
        deadline = time.monotonic() + 30
        while True:  # until every change is stored, or 30 s
            stored = await asyncio.to_thread(reader.deals)
            fresh = [i for i in ids if i in stored and stored[i][:2] == expected[i]]
            if len(fresh) == len(ids) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        stats = await control.stats()
    finally:
        reader.close()
        await hooks.close()
        await control_pool.close()
    sent_at = {s.tag: s.sent_wall for s in sent}
    lags = [(stored[i][2] - sent_at[i]) * 1000 for i in fresh]
    return {
        "fresh": len(fresh),
        "p50_ms": round(report.percentile(lags, 50), 1),
        "p99_ms": round(report.percentile(lags, 99), 1),
        "max_ms": round(max(lags, default=0.0), 1),
        "non_200": sum(s.status != 200 for s in sent),
        "api_calls": stats["calls"],
    }
