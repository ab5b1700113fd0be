"""Wait once for amoCRM's OAuth redirect (`amosync auth login`): a tiny one-shot HTTP listener.

amoCRM sends the browser to `{redirect_uri}?code=…&state=…&referer=…` after "Allow", or
`?error=access_denied&state=…` after "Deny". Only a GET on the redirect path with our
`state` counts; anything else (a favicon request, a stale tab, a forged link) is answered
and ignored, and the listener keeps waiting until the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

READ_TIMEOUT = 10.0  # per request line / header line; a silent client must not hold us
_PAGE = "<!doctype html><meta charset=utf-8><title>amosync</title><p>{message}</p>"


@dataclass(frozen=True)
class Callback:
    code: str | None
    error: str | None
    referer: str | None  # the account's domain, e.g. example.amocrm.ru


# What the browser tab shows; the terminal gets the same outcome with details.
PAGE_GRANTED = "amosync is connected to amoCRM: the tokens are stored. You can close this tab."
PAGE_FAILED = "amosync received the redirect, but connecting failed: {reason}"
PAGE_DENIED = "Access was not granted. You can close this tab."
PAGE_BUSY = "amosync is already handling a redirect; see the terminal."


@dataclass(frozen=True)
class Outcome:
    """What handling the redirect gave: shown in the browser, then returned to the caller."""

    ok: bool
    message: str  # for the terminal
    page: str  # for the browser


async def wait_for_callback(
    sock: socket.socket,
    path: str,
    state: str,
    handle_callback: Callable[[Callback], Awaitable[Outcome]],
    *,
    within: float,
) -> Outcome:
    """Serve on the bound `sock` until a redirect carrying `state` was handled.

    The browser is answered only after `handle_callback` (the code exchange) finished, so
    the page tells what really happened. TimeoutError after `within` seconds.
    """
    result: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    taken = False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal taken
        try:
            status, message, callback = await _read(reader, path, state)
            if callback is not None and taken:
                status, message, callback = 409, PAGE_BUSY, None
            if callback is not None:
                taken = True
                try:
                    outcome = await handle_callback(callback)
                except Exception as exc:  # reported by the caller; the tab still gets an answer
                    outcome = Outcome(
                        False, str(exc), PAGE_FAILED.format(reason="see the terminal")
                    )
                    if not result.done():
                        result.set_exception(exc)
                status, message = (200 if outcome.ok else 502), outcome.page
                if not result.done():
                    result.set_result(outcome)
            _respond(writer, status, message)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, sock=sock)
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
    return 200, "", Callback(first("code"), first("error"), first("referer"))


def _respond(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = _PAGE.format(message=html.escape(message)).encode()
    reason = {
        200: "OK",
        400: "Bad Request",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        502: "Bad Gateway",
    }
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
