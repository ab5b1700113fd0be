"""The ceiling: a bare ASGI app on uvicorn that answers 200 without parsing or storing.

It runs with the same uvicorn options as `amosync serve`, so the ratio between the two is
what amosync's own work costs. Run: `python -m bench.baseline --port 8090`.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

_BODY = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body, as any real endpoint must
        message = await receive()
        more = bool(message.get("more_body", False))
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


def run_like_serve(asgi_app: ASGIApp, host: str, port: int) -> None:
    """uvicorn with the options `amosync serve` uses (httptools, uvloop, no access log)."""
    uvicorn.run(
        asgi_app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_like_serve(app, args.host, args.port)


if __name__ == "__main__":
    main()
