"""Open-loop load from Python: webhooks sent on a schedule, each with its send and ACK time.

wrk measures the ACK ceiling; the scenarios that need a fixed rate, a distinct body per
request and per-request timestamps (burst, freshness, memory) use this small keep-alive
HTTP/1.1 client instead. It sends a few hundred requests a second without effort, far
below what it could do, so it does not limit what it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Sent:
    tag: int  # what the caller sent about (a lead id)
    status: int  # 0 when the request failed without an answer
    sent_wall: float  # time.time() just before sending
    ack_seconds: float  # until the whole answer was read


class HttpPool:
    """Keep-alive HTTP/1.1 connections to one server; `post` borrows one per request."""

    def __init__(self, base_url: str, connections: int) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._size = connections
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._all: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        for _ in range(self._size):
            self._idle.put_nowait(await self._connect())

    async def close(self) -> None:
        for writer in self._all:
            writer.close()

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = FORM
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "User-Agent: amoCRM-Webhooks/3.0\r\n\r\n"
        ).encode() + body
        reader, writer = await self._idle.get()
        try:
            try:
                return await _exchange(reader, writer, head)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection (uvicorn does after 5 s)
                # before answering: send once more on a new connection.
                writer.close()
                reader, writer = await self._connect()
                return await _exchange(reader, writer, head)
        except BaseException:
            writer.close()
            reader, writer = await self._connect()
            raise
        finally:
            self._idle.put_nowait((reader, writer))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        self._all.append(writer)
        return reader, writer

    async def post_timed(self, path: str, body: bytes, tag: int) -> Sent:
        sent_wall = time.time()
        started = time.perf_counter()
        try:
            status, _ = await self.request("POST", path, body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            status = 0
        return Sent(tag, status, sent_wall, time.perf_counter() - started)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    await writer.drain()
    return await _read_response(reader)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def send_at_rate(
    pool: HttpPool,
    path: str,
    bodies: Sequence[tuple[int, bytes]],
    rate: float,
) -> list[Sent]:
    """Send `bodies` (tag, body) at `rate` per second, not waiting for answers to go on."""
    start = time.perf_counter()
    tasks: list[asyncio.Task[Sent]] = []
    for n, (tag, body) in enumerate(bodies):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(pool.post_timed(path, body, tag)))
    return list(await asyncio.gather(*tasks))
