"""1. ACK: how fast `serve` answers amoCRM, next to a bare ASGI app measured in the same run.

wrk posts the real fixture body at 1, 10 and 50 connections to the bare app, to the durable
reference (bare + parse + grouped SQLite commits: the issue's reference row, see
bench/durable_reference.py) and to `amosync serve` (with its worker running, as deployed),
one after the other per level. The targets are against the bare ceiling; the ratio against
the reference shows what amosync's work beyond parse-and-commit costs. During serve's runs
a probe times the disk's own fdatasync (bench/disk.py), so a p99 or max can be read against
the disk's in the same seconds.
"""

from __future__ import annotations

from typing import Any

from bench import procs, report
from bench.bodies import fixture_body
from bench.context import Context
from bench.disk import FsyncProbe
from bench.wrk import WrkResult, run_wrk

LEVELS = (1, 10, 50)
P99_TARGET_MS = 15.0
RATIO_TARGET = 0.5
PG_SLACK = 1.5  # PostgreSQL targets are within 1.5x of SQLite's


def run(ctx: Context) -> dict[str, Any]:
    seconds = ctx.pick(10, 3)
    body = ctx.workdir / "webhook.form"
    body.write_bytes(fixture_body())
    results: list[dict[str, Any]] = []
    with (
        procs.fake_amocrm(ctx.logs, leads=5, latency=ctx.latency) as fake,
        procs.baseline(ctx.logs) as base,
        procs.durable_reference(ctx.logs, ctx.workdir / "durable-reference.db") as ref,
        ctx.serve_on_fresh_db(fake.url, "ack") as (srv, _url),
    ):
        target = procs.webhook_url(srv)
        ceiling = f"{base.url}/amocrm/x"
        reference = f"{ref.url}/amocrm/x"
        for url in (ceiling, reference, target):  # warm-up: connections, caches, the database file
            run_wrk(url, body, connections=10, seconds=2, workdir=ctx.workdir)
        for level in LEVELS:
            bare = run_wrk(ceiling, body, connections=level, seconds=seconds, workdir=ctx.workdir)
            durable = run_wrk(
                reference, body, connections=level, seconds=seconds, workdir=ctx.workdir
            )
            cpu_before = srv.cpu_seconds()
            with FsyncProbe(ctx.workdir) as disk:
                ours = run_wrk(
                    target, body, connections=level, seconds=seconds, workdir=ctx.workdir
                )
            cpu = srv.cpu_seconds() - cpu_before
            results.append(_row(level, bare, durable, ours, cpu, disk.summary()))
    report.table(
        f"ACK ({ctx.db}, {seconds:.0f} s per run, wrk, real webhook body)",
        [
            "conns",
            "bare req/s",
            "ref req/s",
            "amosync req/s",
            "ratio",
            "vs ref",
            "bare p50/p99 ms",
            "amosync p50/p99 ms",
            "errors",
            "serve CPU ms/req",
            "disk fsync p99/max ms",
        ],
        [
            [
                r["connections"],
                r["bare_rps"],
                r["reference_rps"],
                r["rps"],
                r["ratio"],
                r["ratio_to_reference"],
                f"{r['bare_p50_ms']:.2f} / {r['bare_p99_ms']:.2f}",
                f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}",
                r["errors"],
                r["cpu_ms_per_request"],
                f"{r['disk_fsync']['p99_ms']:.1f} / {r['disk_fsync']['max_ms']:.0f}",
            ]
            for r in results
        ],
    )
    at50 = results[-1]
    slack = PG_SLACK if ctx.db == "postgresql" else 1.0
    targets = {
        "ratio_at_50": {
            "value": at50["ratio"],
            "target": f">= {RATIO_TARGET / slack:.2f}",
            "met": at50["ratio"] >= RATIO_TARGET / slack,
        },
        "p99_ms_at_50": {
            "value": at50["p99_ms"],
            "target": f"<= {P99_TARGET_MS * slack:.1f}",
            "met": at50["p99_ms"] <= P99_TARGET_MS * slack,
        },
        "no_errors": {
            "value": sum(r["errors"] for r in results),
            "target": "0",
            "met": all(r["errors"] == 0 for r in results),
        },
    }
    for name, t in targets.items():
        print(f"target {name}: {t['value']} (target {t['target']}): {report.verdict(t['met'])}")
    return {"db": ctx.db, "seconds": seconds, "levels": results, "targets": targets}


def _row(
    level: int,
    bare: WrkResult,
    durable: WrkResult,
    ours: WrkResult,
    cpu: float,
    disk: dict[str, Any],
) -> dict[str, Any]:
    return {
        "connections": level,
        "bare_rps": round(bare.rps, 1),
        "bare_p50_ms": bare.p50_ms,
        "bare_p99_ms": bare.p99_ms,
        "reference_rps": round(durable.rps, 1),
        "reference_p50_ms": durable.p50_ms,
        "reference_p99_ms": durable.p99_ms,
        "reference_errors": durable.non2xx + durable.socket_errors,
        "ratio_to_reference": round(ours.rps / durable.rps, 3) if durable.rps else 0.0,
        "rps": round(ours.rps, 1),
        "p50_ms": ours.p50_ms,
        "p99_ms": ours.p99_ms,
        "max_ms": ours.max_ms,
        "ratio": round(ours.rps / bare.rps, 3) if bare.rps else 0.0,
        "errors": ours.non2xx + ours.socket_errors,
        "requests": ours.requests,
        "cpu_ms_per_request": round(cpu * 1000 / ours.requests, 3) if ours.requests else 0.0,
        # The disk's fdatasync latency during serve's run (bench/disk.py): a slow fsync
        # holds every request waiting on a commit.
        "disk_fsync": disk,
    }
