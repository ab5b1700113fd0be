"""The fake amoCRM in its own process, plus a few `/_bench/*` routes to drive and read it.

The fake API itself is `amosync.testing.create_fake_amocrm` unchanged (latency, the 7 req/s
limit, 429s); the bench routes sit beside it, outside its gate, so they are neither
rate-limited nor logged as API calls. Run: `python -m bench.fake_amocrm --port 8081`.
"""

from __future__ import annotations

import argparse
import collections

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from amosync.testing import FakeAmoState, create_fake_amocrm, rentprog_field
from amosync.testing.fake_fields import (
    CAR_CLASS_FIELD_ID,
    OPTIONS_FIELD_ID,
    RENT_PRICE_FIELD_ID,
    RENTAL_START_FIELD_ID,
    field_value,
)


def _json(body: object) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), media_type="application/json"
    )


def create_bench_fake(state: FakeAmoState) -> Starlette:
    async def stats(request: Request) -> Response:
        """What the fake's API saw: calls, statuses, the busiest 1-second window."""
        calls = state.calls()
        by_status = collections.Counter(str(c.status) for c in calls)
        by_path = collections.Counter(c.path for c in calls)
        return _json(
            {
                "calls": len(calls),
                "by_status": dict(by_status),
                "by_path": dict(by_path),
                "max_in_1s": state.max_calls_in_any_window(1.0),
                "count_429": state.count_429(),
            }
        )

    async def reset(request: Request) -> Response:
        with state.lock:
            state.requests.clear()
        return _json({"ok": True})

    async def touch(request: Request) -> Response:
        """Change leads as a user in amoCRM would (price + 1, a new updated_at)."""
        ids = orjson.loads(await request.body())["ids"]
        changed = {}
        with state.lock:
            for lead_id in ids:
                price = state.leads[lead_id].fields["price"] + 1
                view = state.update_lead(lead_id, price=price)
                changed[lead_id] = [view["price"], view["updated_at"]]
        return _json(changed)

    async def leads(request: Request) -> Response:
        """Every lead's current price and updated_at: what a correct copy must hold."""
        with state.lock:
            body = {i: [e.fields["price"], e.updated_at] for i, e in state.leads.items()}
        return _json(body)

    bench_routes = [
        Route("/_bench/stats", stats, methods=["GET"]),
        Route("/_bench/reset", reset, methods=["POST"]),
        Route("/_bench/touch", touch, methods=["POST"]),
        Route("/_bench/leads", leads, methods=["GET"]),
    ]
    return Starlette(routes=[*bench_routes, Mount("/", app=create_fake_amocrm(state))])


def seed(state: FakeAmoState, count: int) -> None:
    """`count` leads like the deals a rental business keeps: a RentProg ID, a few other
    fields (a price, a start, a car class, options) and a tag."""
    fields = {d["id"]: d for d in state.lead_custom_fields}
    for n in range(1, count + 1):
        values = [
            field_value(fields[RENT_PRICE_FIELD_ID], 1000 + n % 5000),
            field_value(fields[RENTAL_START_FIELD_ID], 1_717_236_000 + n * 3600),
            field_value(fields[CAR_CLASS_FIELD_ID], "Комфорт"),
            field_value(fields[OPTIONS_FIELD_ID], "Детское кресло", "GPS"),
        ]
        state.add_lead(
            name=f"Аренда #{n}",
            price=1000,
            custom_fields_values=[rentprog_field(f"RP-{n}"), *(v for v in values if v)],
            tags=["Повторный"] if n % 3 == 0 else (),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API call")
    args = parser.parse_args()
    state = FakeAmoState(latency_seconds=args.latency)
    seed(state, args.leads)
    uvicorn.run(
        create_bench_fake(state),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
