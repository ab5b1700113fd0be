"""Serving the fake amoCRM on a real port: in a thread for tests, or blocking for the CLI."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from amosync.testing.fake_amocrm import create_fake_amocrm
from amosync.testing.fake_fields import (
    CAR_CLASS_FIELD_ID,
    DEFAULT_TOKEN,
    RENTAL_START_FIELD_ID,
    RENTPROG_FIELD_ID,
    field_value,
    rentprog_field,
)
from amosync.testing.fake_state import FakeAmoState

logger = logging.getLogger(__name__)


def _config(state: FakeAmoState, log_level: str, graceful_seconds: int | None) -> uvicorn.Config:
    # Host and port are not set here: the server gets an already bound socket instead.
    return uvicorn.Config(
        create_fake_amocrm(state),
        log_level=log_level,
        access_log=False,
        # The fake has no lifespan work; "off" keeps uvicorn from probing for it.
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=graceful_seconds,
    )


@contextmanager
def run_fake_in_thread(
    state: FakeAmoState,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
    graceful_shutdown_seconds: int = 5,
) -> Iterator[str]:
    """Serve the fake on `host:port` (0 = a free port) in a thread; yields `http://host:port`.

    The socket is bound before the thread starts, so the port is known and connections queue
    up at once; the context still waits until uvicorn has started so the first request is
    answered promptly. On exit the server stops; requests still hanging on a `Fault(hang=…)`
    get `graceful_shutdown_seconds` to finish before they are cancelled.
    """
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_config(state, "warning", graceful_shutdown_seconds))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-amocrm", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake amoCRM server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_shutdown_seconds + 5.0)
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    # Binding ourselves is how port 0 becomes a known free port before uvicorn starts.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def seed_demo_account(state: FakeAmoState, leads: int) -> None:
    """A few leads with a RentProg ID, a car class, a rental start and a main contact each;
    every third has a company."""
    company = state.add_company(name="ООО Прокат", phones=["+74950000000"])
    fields = {d["id"]: d for d in state.lead_custom_fields}
    classes = fields[CAR_CLASS_FIELD_ID]["enums"]
    for n in range(1, leads + 1):
        contact = state.add_contact(
            first_name="Клиент",
            last_name=str(n),
            phones=[(f"+7900000{n:04d}", "MOB")],
            emails=[f"client{n}@example.com"],
            company_id=company["id"] if n % 3 == 0 else None,
        )
        values = [
            field_value(fields[CAR_CLASS_FIELD_ID], classes[n % len(classes)]["value"]),
            field_value(fields[RENTAL_START_FIELD_ID], 1_781_258_400 + n * 86_400),
        ]
        state.add_lead(
            name=f"Аренда #{n}",
            price=1000 * n,
            custom_fields_values=[rentprog_field(f"RP-{1000 + n}"), *(v for v in values if v)],
            contacts=[(contact["id"], True)],
            companies=[company["id"]] if n % 3 == 0 else [],
            tags=["fake"],
        )


def serve_fake(
    host: str, port: int, *, seed_leads: int = 5, redirect_uri: str | None = None
) -> None:
    """Run a seeded fake amoCRM until interrupted (`amosync dev fake-amocrm`)."""
    state = FakeAmoState()
    seed_demo_account(state, seed_leads)
    if redirect_uri:
        state.oauth.redirect_uri = redirect_uri
    long_lived = state.oauth.issue_long_lived(365)
    state.tokens.add(long_lived)
    sock = _bind(host, port)
    base_url = f"http://{host}:{sock.getsockname()[1]}"
    logger.info(
        "fake amoCRM at %s (account %s, subdomain %s); RentProg field id %s; "
        "control page %s/_fake/",
        base_url,
        state.account_id,
        state.subdomain,
        RENTPROG_FIELD_ID,
        base_url,
    )
    logger.info(
        "long-lived token (a JWT, expires in 365 days): %s ; the tests' token %r never expires",
        long_lived,
        DEFAULT_TOKEN,
    )
    logger.info(
        "OAuth: AMOSYNC_AMOCRM_CLIENT_ID=%s AMOSYNC_AMOCRM_CLIENT_SECRET=%s "
        "AMOSYNC_AMOCRM_REDIRECT_URI=%s",
        state.oauth.client_id,
        state.oauth.client_secret,
        state.oauth.redirect_uri,
    )
    logger.info(
        "try: curl -H 'Authorization: Bearer %s' %s/api/v4/leads?with=contacts",
        DEFAULT_TOKEN,
        base_url,
    )
    try:
        uvicorn.Server(_config(state, "info", None)).run(sockets=[sock])
    finally:
        sock.close()
