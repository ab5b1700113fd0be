"""Wait once for amoCRM's OAuth redirect (`amosync auth login`): a tiny one-shot HTTP listener.

amoCRM sends the browser to `{redirect_uri}?code=…&state=…&referer=…` after "Allow", or
`?error=access_denied&state=…` after "Deny". Only a GET on the redirect path with our
`state` counts; anything else (a favicon request, a stale tab, a forged link) is answered
and ignored, and the listener keeps waiting until the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

READ_TIMEOUT = 10.0  # per request line / header line; a silent client must not hold us
_PAGE = "<!doctype html><meta charset=utf-8><title>amosync</title><p>{message}</p>"


@dataclass(frozen=True)
class Callback:
    code: str | None
    error: str | None
    referer: str | None  # the account's domain, e.g. example.amocrm.ru


async def wait_for_callback(
    host: str, port: int, path: str, state: str, *, within: float
) -> Callback:
    """The first redirect carrying `state`; TimeoutError after `within` seconds."""
    result: asyncio.Future[Callback] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, message, callback = await _read(reader, path, state)
            _respond(writer, status, message)
            await writer.drain()
            if callback is not None and not result.done():
                result.set_result(callback)
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    async with server:
        return await asyncio.wait_for(result, within)


async def _read(
    reader: asyncio.StreamReader, path: str, state: str
) -> tuple[int, str, Callback | None]:
    request_line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    while True:  # headers: nothing in them matters
        line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        if line in (b"\r\n", b"\n", b""):
            break
    parts = request_line.decode("latin-1").split()
    if len(parts) < 2 or parts[0] != "GET":
        return 405, "Only GET is expected here.", None
    target = urlsplit(parts[1])
    if target.path.rstrip("/") != path.rstrip("/"):
        return 404, "Not the amosync redirect path.", None
    query = parse_qs(target.query)

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    if first("state") != state:
        return 400, "This link is not from the running `amosync auth login` (state).", None
    callback = Callback(first("code"), first("error"), first("referer"))
    if callback.error:
        return 200, "Access was not granted. You can close this tab.", callback
    return 200, "amosync received the authorization. You can close this tab.", callback


def _respond(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = _PAGE.format(message=message).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
