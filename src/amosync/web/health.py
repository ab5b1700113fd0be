"""`GET /health/live` and `GET /health`: the contract is in docs/OPERATIONS.md.

- `/health/live`: the process answers and its database answers a query (and, on SQLite, the
  file is still the one it opened). For container and load-balancer liveness: `200`/`503`.
- `/health`: every check (health/checks.py), for monitoring: `503` when any check fails;
  warnings do not fail it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse

from amosync.health import HealthProbe, run_checks
from amosync.health.model import worst

__all__ = ["health", "health_live", "run_checks"]


def probe_of(request: Request) -> HealthProbe:
    probe: HealthProbe | None = getattr(request.app.state, "health_probe", None)
    if probe is None:
        probe = request.app.state.health_probe = HealthProbe()
    return probe


async def health(request: Request) -> JSONResponse:
    checks = await run_checks(request.app.state.settings, request.app.state.db, probe_of(request))
    now = datetime.now(UTC)
    ok = all(c.ok for c in checks.values())
    return JSONResponse(
        {
            "status": "ok" if ok else "failing",
            "worst": worst(checks),
            "checks": {name: c.as_json(now) for name, c in checks.items()},
        },
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )


async def health_live(request: Request) -> JSONResponse:
    check = await probe_of(request).live(request.app.state.db)
    return JSONResponse(
        {"status": "ok" if check.ok else "failing", "database": check.as_json()},
        status_code=200 if check.ok else 503,
        headers={"Cache-Control": "no-store"},
    )
