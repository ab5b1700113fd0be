"""A port someone else already listens on: one line naming the port and the setting, exit 2.

Every listener amosync starts (`serve`, `dev fake-amocrm`, `auth login`'s callback, `demo`)
binds its socket here *before* anything else starts and hands the bound socket on, so a busy
port can never turn into uvicorn's traceback or a `listening` line followed by exit 3.
"""

from __future__ import annotations

import errno
import socket
from typing import NoReturn

from amosync.cli.common import fail
from amosync.l10n.catalog import N_

# Exit code for "bad configuration": the operator changes a setting and runs it again.
PORT_BUSY_EXIT = 2


def port_busy_message(host: str, port: int, setting: str, reason: str = N_("in use")) -> str:
    said = N_("cannot listen on {address}: the port is {reason}; change {setting}")
    return said.format(address=f"{host}:{port}", reason=reason, setting=setting)


def bind_or_exit(host: str, port: int, setting: str) -> socket.socket:
    """A listening-ready socket bound to `host:port`, or exit 2 naming `setting`."""
    try:
        return bind(host, port)
    except OSError as exc:
        port_unavailable(host, port, setting, exc)


def port_unavailable(host: str, port: int, setting: str, exc: OSError) -> NoReturn:
    if exc.errno == errno.EADDRINUSE:
        reason = N_("in use (another program listens on it)")
    elif exc.errno == errno.EACCES:
        reason = N_("not allowed for this user (ports below 1024 need root)")
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = N_("on an address this machine does not have")
    else:
        reason = N_("unavailable ({error})").format(error=exc.strerror or exc)
    fail(port_busy_message(host, port, setting, reason), PORT_BUSY_EXIT)


def bind(host: str, port: int) -> socket.socket:
    """Bind like uvicorn does (SO_REUSEADDR: a port in TIME_WAIT is fine, a listener is not)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
