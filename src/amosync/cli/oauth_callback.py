"""Wait once for amoCRM's OAuth redirect (`amosync auth login`): a tiny one-shot HTTP listener.

amoCRM sends the browser to `{redirect_uri}?code=…&state=…&referer=…` after "Allow", or
`?error=access_denied&state=…` after "Deny". Only a GET on the redirect path with our
`state` counts; anything else (a favicon request, a stale tab, a forged link) is answered
and ignored, and the listener keeps waiting until the timeout.

The tab speaks the browser's language (`Accept-Language`, Russian or English), else the
CLI's (AMOSYNC_LANG, the locale); its texts are msgids of the catalogue (amosync/l10n).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from amosync.l10n.catalog import N_, from_accept_language
from amosync.l10n.phrases import translate

READ_TIMEOUT = 10.0  # per request line / header line; a silent client must not hold us
_PAGE = (
    "<!doctype html><html lang={lang}><meta charset=utf-8><title>amosync</title>"
    "<p>{message}</p></html>"
)


@dataclass(frozen=True)
class Callback:
    code: str | None
    error: str | None
    referer: str | None  # the account's domain, e.g. example.amocrm.ru


# What the browser tab shows; the terminal gets the same outcome with details.
PAGE_GRANTED = N_("amosync is connected to amoCRM: the tokens are stored. You can close this tab.")
PAGE_FAILED = N_("amosync received the redirect, but connecting failed: {reason}")
PAGE_DENIED = N_("Access was not granted. You can close this tab.")
PAGE_BUSY = N_("amosync is already handling a redirect; see the terminal.")
SEE_TERMINAL = N_("see the terminal")
NOT_GET = N_("Only GET is expected here.")
NOT_THE_PATH = N_("Not the amosync redirect path.")
NOT_OUR_STATE = N_("This link is not from the running `amosync auth login` (state).")


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
    lang: str = "en",
) -> Outcome:
    """Serve on the bound `sock` until a redirect carrying `state` was handled.

    The browser is answered only after `handle_callback` (the code exchange) finished, so
    the page tells what really happened, in the browser's language or else `lang`.
    TimeoutError after `within` seconds.
    """
    result: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    taken = False

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal taken
        try:
            status, message, callback, asked = await _read(reader, path, state)
            if callback is not None and taken:
                status, message, callback = 409, PAGE_BUSY, None
            if callback is not None:
                taken = True
                try:
                    outcome = await handle_callback(callback)
                except Exception as exc:  # reported by the caller; the tab still gets an answer
                    outcome = Outcome(False, str(exc), PAGE_FAILED.format(reason=SEE_TERMINAL))
                    if not result.done():
                        result.set_exception(exc)
                status, message = (200 if outcome.ok else 502), outcome.page
                if not result.done():
                    result.set_result(outcome)
            _respond(writer, status, message, asked or lang)
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
) -> tuple[int, str, Callback | None, str | None]:
    """Status, page text and the redirect of one request, and the language its browser
    prefers (None: neither Russian nor English)."""
    request_line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    asked = None
    while True:  # headers: only the language matters
        line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "accept-language":
            asked = from_accept_language(value)
    parts = request_line.decode("latin-1").split()
    if len(parts) < 2 or parts[0] != "GET":
        return 405, NOT_GET, None, asked
    target = urlsplit(parts[1])
    if target.path.rstrip("/") != path.rstrip("/"):
        return 404, NOT_THE_PATH, None, asked
    query = parse_qs(target.query)

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    if first("state") != state:
        return 400, NOT_OUR_STATE, None, asked
    return 200, "", Callback(first("code"), first("error"), first("referer")), asked


def _respond(writer: asyncio.StreamWriter, status: int, message: str, lang: str) -> None:
    shown = translate(message, lang)  # composed in English: the reason is translated too
    body = _PAGE.format(lang=lang, message=html.escape(shown)).encode()
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
