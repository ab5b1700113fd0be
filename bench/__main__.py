"""`python -m bench [SCENARIO ...] [--quick] [--db sqlite|postgresql|both]`.

Scenarios: ack, burst, fresh, scale, memory, page (default: all, in that order). Each prints a
table and a final `BENCH_RESULT {json}` line. `--quick` runs each for seconds (a smoke
run); without it the durations of docs/PERFORMANCE.md apply (about 15 minutes per database).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.context import Context
from bench.dbs import DEFAULT_PG_ADMIN_URL
from bench.scenarios import ack, burst, fresh, memory, page, scale

SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ack": ack.run,
    "burst": burst.run,
    "fresh": fresh.run,
    "scale": scale.run,
    "memory": memory.run,
    "page": page.run,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--quick", action="store_true", help="seconds per scenario, not minutes")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("AMOSYNC_BENCH_PG_URL", DEFAULT_PG_ADMIN_URL),
        help="PostgreSQL URL allowed to CREATE/DROP DATABASE [env: AMOSYNC_BENCH_PG_URL]",
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="fake amoCRM seconds per API call"
    )
    parser.add_argument("--workdir", type=Path, help="where databases and logs go (default: temp)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    names = args.scenarios or list(SCENARIOS)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="amosync-bench-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"# amosync bench: {', '.join(names)} on {', '.join(kinds)}; logs in {logs}")
    print(f"# machine: {report.machine()}")
    for kind in kinds:
        ctx = Context(workdir, logs, kind, args.pg_admin_url, args.quick, args.latency)
        for name in names:
            started = time.perf_counter()
            result = SCENARIOS[name](ctx)
            result["mode"] = "quick" if args.quick else "full"
            result["wall_seconds"] = round(time.perf_counter() - started, 1)
            report.emit(name, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
