"""The issue's reference durable receiver: the bare app plus the form parse and SQLite commits
grouped across concurrent requests (WAL, synchronous=FULL), answering each request after its
commit. Nothing else: no secret, no account check, no log line, no metrics, no worker.

amosync must do all of that too, so the ratio amosync / this reference shows what amosync's
own extras cost, next to the ratio against the bare ceiling. It parses with amosync's own
decoder, because a PHP-style nested form is what every amoCRM body needs decoded.
Run: `python -m bench.durable_reference --port 8091 --database /tmp/ref.db`.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from amosync.core.webhook import WebhookParseError, parse_webhook
from bench.baseline import run_like_serve

_BODY = b'{"ok":true}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"11")]


class GroupCommit:
    """Bodies queued while a commit runs go into the next commit, all in one transaction."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1)  # the connection lives on this thread
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def store(self, body: bytes) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self._pending.append((body, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await loop.run_in_executor(self._executor, self._commit, [b for b, _ in batch])
                for _, future in batch:
                    future.set_result(None)

    def _commit(self, bodies: list[bytes]) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, body)")
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.executemany("INSERT INTO inbox (body) VALUES (?)", [(b,) for b in bodies])
        self._conn.execute("COMMIT")


def make_app(path: Path) -> ASGIApp:
    writer = GroupCommit(path)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        try:
            parse_webhook(body)
        except WebhookParseError:
            await send({"type": "http.response.start", "status": 400, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await writer.store(body)
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": _BODY})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", type=Path, required=True)
    args = parser.parse_args()
    run_like_serve(make_app(args.database), args.host, args.port)


if __name__ == "__main__":
    main()
