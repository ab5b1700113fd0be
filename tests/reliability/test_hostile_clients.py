"""Scenario 5 over a real socket: slow-loris clients, a 50 MiB body and a flood of huge forms
against `amosync serve`. Other senders are still answered promptly and memory stays bounded."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.harness import FORM, SECRET, Fleet, lead_body, report

SLOW_CLIENTS = 100


def open_slow_client(port: int, *, with_body: bool) -> socket.socket:
    """A client that starts a request and never finishes it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = f"POST /amocrm/{SECRET} HTTP/1.1\r\nHost: x\r\n"
    if with_body:
        head += f"Content-Type: {FORM['Content-Type']}\r\nContent-Length: 100000\r\n\r\nleads"
    sock.sendall(head.encode())
    return sock


def post_raw_50_mib(port: int) -> bytes:
    """Declare and start sending 50 MiB; return whatever the server answers."""
    size = 50 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /amocrm/{SECRET} HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM['Content-Type']}"
                f"\r\nContent-Length: {size}\r\n\r\n"
            ).encode()
        )
        chunk = b"a" * 65536
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: it did not wait for 50 MiB
        return sock.recv(4096)


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_hostile_clients_do_not_starve_or_bloat_the_receiver(db_url: str, tmp_path: Path) -> None:
    """With 100 half-open requests, a 50 MiB body and 20 forms of 10^5 keys, a real webhook
    is still answered 200 within a second and the process grows by less than 64 MiB."""
    fleet = Fleet(db_url, "http://127.0.0.1:9", tmp_path)
    slow: list[socket.socket] = []
    try:
        web = fleet.web()
        with httpx.Client(base_url=web.url, timeout=5) as client:
            for n in range(20):  # warm up: imports, pools, caches
                client.post(
                    f"/amocrm/{SECRET}",
                    content=lead_body("webhook_leads_add_2016_zapier.form", 1000 + n),
                    headers=FORM,
                )
            baseline = web.rss_kib()
            slow = [
                open_slow_client(web.port or 0, with_body=n % 10 == 0) for n in range(SLOW_CLIENTS)
            ]
            started = time.monotonic()
            ok = client.post(
                f"/amocrm/{SECRET}",
                content=lead_body("webhook_leads_add_2016_zapier.form", 2000),
                headers=FORM,
            )
            answered_in = time.monotonic() - started
            huge = post_raw_50_mib(web.port or 0)
            many_keys = b"&".join(b"k%d=1" % n for n in range(100_000))
            floods = [
                client.post(f"/amocrm/{SECRET}", content=many_keys, headers=FORM).status_code
                for _ in range(20)
            ]
            grown_kib = web.rss_kib() - baseline
            health = client.get("/health")
    finally:
        for sock in slow:
            sock.close()
        fleet.stop()

    report(
        "hostile-clients",
        slow_clients=SLOW_CLIENTS,
        answered_in_ms=round(answered_in * 1000),
        rss_growth_kib=grown_kib,
        floods=len(floods),
    )
    assert 200 == ok.status_code
    assert answered_in < 1.0
    assert huge.startswith(b"HTTP/1.1 413")
    assert [400] * 20 == floods
    assert grown_kib < 64 * 1024, grown_kib
    assert health.status_code in {200, 503}  # answered (503 only names the missing worker)
