"""5. Memory and CPU: RSS of `serve` before, during and after a long run at 200 webhooks/s.

RSS is sampled every second from /proc. "Growth" compares the end of the run with the end
of the warm-up (the first minute): caches, pools and the allocator settle during warm-up;
what grows after it is what would grow without bound. CPU per event is the serve process's
user + system time over the run (web and worker together) divided by the events processed.

CPU per event at a steady rate depends on the host far more than a saturated figure does:
on a 2-core VM a request that arrives alone finds caches cold, and the bare app itself paid
0.4-0.5 ms per request at 200/s against 0.06 ms under wrk. So the bare app and the durable
reference (bench/durable_reference.py) get the same load first, for a shorter time, and the
figures are printed next to serve's as ratios measured in the same run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import procs, report
from bench.bodies import lead_update_body
from bench.context import Context
from bench.dbs import Reader
from bench.disk import FsyncProbe
from bench.loadgen import HttpPool, Sent, send_at_rate

RATE = 200.0
LEADS = 2000
RSS_TARGET_MB = 150.0
GROWTH_TARGET = 0.05
CPU_TARGET_MS = 1.0
PG_SLACK = 1.5  # PostgreSQL targets are within 1.5x of SQLite's


def run(ctx: Context) -> dict[str, Any]:
    seconds = ctx.pick(600, 30)
    warmup = ctx.pick(60, 10)
    baselines = _baselines_cpu(ctx, ctx.pick(60, 10))
    with (
        procs.fake_amocrm(ctx.logs, leads=LEADS, latency=ctx.latency) as fake,
        ctx.serve_on_fresh_db(fake.url, "memory") as (srv, url),
        FsyncProbe(ctx.workdir) as disk,
    ):
        result = asyncio.run(_memory(srv, url, seconds, warmup))
    result["disk_fsync"] = disk.summary()  # the disk's own tail in the same minutes
    result.update(db=ctx.db, rate=RATE, seconds=seconds, warmup_seconds=warmup)
    result.update(baselines)
    for name in ("bare", "reference"):
        result[f"cpu_vs_{name}"] = round(
            result["cpu_ms_per_event"] / max(baselines[f"{name}_cpu_ms_per_request"], 1e-9), 2
        )
    growth = result["growth"]
    slack = PG_SLACK if ctx.db == "postgresql" else 1.0
    rss_target = RSS_TARGET_MB * slack
    growth_target = GROWTH_TARGET * slack
    cpu_target = CPU_TARGET_MS * slack
    result["targets"] = {
        "rss_steady_mb": {
            "value": result["rss_max_mb"],
            "target": f"<= {rss_target:.0f}",
            "met": result["rss_max_mb"] <= rss_target,
        },
        "growth_after_warmup": {
            "value": growth,
            "target": f"<= {growth_target:.1%}",
            "met": growth <= growth_target,
        },
        "cpu_ms_per_event": {
            "value": result["cpu_ms_per_event"],
            "target": f"<= {cpu_target}",
            "met": result["cpu_ms_per_event"] <= cpu_target,
        },
    }
    report.table(
        f"Memory and CPU ({ctx.db}): {RATE:.0f} webhooks/s for {seconds:.0f} s "
        f"(warm-up {warmup:.0f} s)",
        ["figure", "value"],
        [
            ["RSS before (idle) MB", result["rss_before_mb"]],
            ["RSS after warm-up MB", result["rss_warm_mb"]],
            ["RSS max during run MB", result["rss_max_mb"]],
            ["RSS at end of run MB", result["rss_end_mb"]],
            ["RSS 10 s after the run MB", result["rss_after_mb"]],
            ["growth after warm-up", f"{growth:.1%}"],
            ["growth over the second half", f"{result['growth_second_half']:.1%}"],
            ["events processed", result["events_done"]],
            ["webhooks not answered 200", result["non_200"]],
            [
                "ACK p50 / p99 / max ms",
                f"{result['ack_p50_ms']} / {result['ack_p99_ms']} / {result['ack_max_ms']}",
            ],
            [
                "disk fsync p99 / max ms (bench/disk.py)",
                f"{result['disk_fsync']['p99_ms']} / {result['disk_fsync']['max_ms']}",
            ],
            ["serve CPU ms per event", result["cpu_ms_per_event"]],
            [
                f"bare app CPU ms per request (same rate, {baselines['baseline_seconds']:.0f} s)",
                baselines["bare_cpu_ms_per_request"],
            ],
            [
                "durable reference CPU ms per request (same rate)",
                baselines["reference_cpu_ms_per_request"],
            ],
            [
                "serve CPU / bare, / reference",
                f"{result['cpu_vs_bare']} / {result['cpu_vs_reference']}",
            ],
        ],
    )
    for name, t in result["targets"].items():
        print(f"target {name}: {t['value']} (target {t['target']}): {report.verdict(t['met'])}")
    return result


def _baselines_cpu(ctx: Context, seconds: float) -> dict[str, Any]:
    """CPU per request of the bare app and of the durable reference under the same load."""
    out: dict[str, Any] = {"baseline_seconds": seconds}
    starts = (
        ("bare", procs.baseline(ctx.logs)),
        ("reference", procs.durable_reference(ctx.logs, ctx.workdir / "memory-reference.db")),
    )
    for name, start in starts:
        with start as proc:
            cpu_ms, non_200 = asyncio.run(_steady_cpu(proc, seconds))
        out[f"{name}_cpu_ms_per_request"] = cpu_ms
        if non_200:
            raise RuntimeError(f"the {name} app did not answer 200 to {non_200} requests")
    return out


async def _steady_cpu(proc: procs.Proc, seconds: float) -> tuple[float, int]:
    """CPU ms per request of `proc` at RATE for `seconds`, and how many were not answered 200."""
    pool = HttpPool(proc.url, 8)
    await pool.open()
    now = int(time.time())
    bodies = [(n, lead_update_body(10000001 + n % LEADS, now)) for n in range(int(RATE * seconds))]
    try:
        before = proc.cpu_seconds()
        sent = await send_at_rate(pool, "/amocrm/x", bodies, RATE)
        cpu = proc.cpu_seconds() - before
    finally:
        await pool.close()
    non_200 = sum(1 for s in sent if s.status != 200)
    return round(cpu * 1000 / len(sent), 3), non_200


async def _memory(srv: procs.Proc, url: str, seconds: float, warmup: float) -> dict[str, Any]:
    hooks = HttpPool(srv.url, 8)
    await hooks.open()
    reader = Reader(url)
    samples: list[tuple[float, float]] = []  # (seconds since start, RSS MB)
    rss_before = srv.rss_mb()
    cpu_before = srv.cpu_seconds()
    start = time.perf_counter()

    async def sample() -> None:
        while True:
            samples.append((time.perf_counter() - start, srv.rss_mb()))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    path = f"/amocrm/{procs.WEBHOOK_SECRET}"
    count = int(RATE * seconds)
    pending: set[asyncio.Task[Sent]] = set()
    statuses: dict[int, int] = {}
    acks: list[float] = []

    def settled(task: asyncio.Task[Sent]) -> None:
        pending.discard(task)
        sent = task.result()  # post_timed reports failures as status 0
        statuses[sent.status] = statuses.get(sent.status, 0) + 1
        acks.append(sent.ack_seconds * 1000)

    try:
        for n in range(count):
            delay = start + n / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lead_id = 10000001 + n % LEADS  # the fake's lead ids
            body = lead_update_body(lead_id, int(time.time()))
            task = asyncio.create_task(hooks.post_timed(path, body, lead_id))
            pending.add(task)
            task.add_done_callback(settled)
        await asyncio.gather(*pending)
        rss_end = srv.rss_mb()
        # Wait for the backlog to drain, then 10 s more: what is kept after the load?
        done = await _wait_drained(reader, count)
        cpu = srv.cpu_seconds() - cpu_before
        await asyncio.sleep(10)
        rss_after = srv.rss_mb()
    finally:
        sampler.cancel()
        reader.close()
        await hooks.close()
    warm = [mb for at, mb in samples if warmup - 5 <= at <= warmup + 5] or [samples[0][1]]
    rss_warm = max(warm)
    during = [mb for at, mb in samples if at <= seconds]
    # A plateau reached after the warm-up is not a leak; growth that goes on to the end is.
    half = next((mb for at, mb in samples if at >= seconds / 2), rss_end)
    return {
        "rss_before_mb": round(rss_before, 1),
        "rss_warm_mb": round(rss_warm, 1),
        "rss_max_mb": round(max(during), 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_after_mb": round(rss_after, 1),
        "growth": round((rss_end - rss_warm) / rss_warm, 4),
        "growth_second_half": round((rss_end - half) / half, 4),
        "rss_series_mb": [round(mb, 1) for _, mb in samples[:: max(1, len(samples) // 60)]],
        "events_done": done,
        "non_200": sum(n for status, n in statuses.items() if status != 200),
        "ack_p50_ms": round(report.percentile(acks, 50), 2),
        "ack_p99_ms": round(report.percentile(acks, 99), 2),
        "ack_max_ms": round(max(acks, default=0.0), 2),
        "cpu_ms_per_event": round(cpu * 1000 / max(done, 1), 3),
    }


async def _wait_drained(reader: Reader, count: int) -> int:
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline:
        done = (await asyncio.to_thread(reader.events_by_status)).get("done", 0)
        if done >= count:
            break
        await asyncio.sleep(0.5)
    return done
