"""`amosync demo`: the whole pipeline on this machine in one command, without an amoCRM account.

It starts the fake amoCRM (the one the tests use) in this process and `amosync serve` as a
child process on free ports, with SQLite in a fresh directory, waits for `/health`,
subscribes amosync's webhook URL in the fake with `amosync webhooks register` (as with a
real account), creates a few deals with their contacts through the fake's control API
(`/_fake/…`, what a user does in amoCRM's UI), lets the fake deliver their webhooks, waits
until amosync has fetched and stored them, prints where to look, and runs until Ctrl-C (or
SIGTERM), then stops both.

`serve` runs with the demo directory as its working directory, so a `.env` of the directory
demo was started in (possibly a real account's) is not read.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer

from amosync.cli.common import fail
from amosync.cli.ports import bind_or_exit, port_unavailable
from amosync.l10n import N_
from amosync.l10n.cli import _

HOST = "127.0.0.1"
HEALTH_TIMEOUT = 30.0  # seconds for `serve` to answer /health (migrating a new SQLite file)
APPLY_TIMEOUT = 60.0  # seconds for the worker to fetch and store the demo deals
REGISTER_TIMEOUT = 60.0  # seconds for `amosync webhooks register`
STOP_TIMEOUT = 15.0  # seconds `serve` gets to stop after SIGTERM before it is killed

# Every line the demo prints, in one place.
MSG_STARTING = N_("starting the fake amoCRM and amosync (data in {directory})…")
MSG_SERVE_DIED = N_("amosync serve exited with code {code} before it was ready; its log:\n{log}")
MSG_NO_HEALTH = N_("amosync did not answer {url} within {seconds} s; log: {log}")
MSG_NOT_REGISTERED = N_("`amosync webhooks register` failed (exit {code}):\n{output}")
MSG_FAKE_REFUSED = N_("the fake amoCRM refused to create a demo {what}: HTTP {status} {body}")
MSG_NOT_DELIVERED = N_(
    "the fake amoCRM did not deliver the demo webhooks to amosync within {seconds} s: "
    "{stats}; log: {log}"
)
MSG_NOT_APPLIED = N_("the demo deals were not stored within {seconds} s; log: {log}")
MSG_READY = N_("""\
amosync demo is running — Ctrl-C stops it.

  fake amoCRM   {fake_url}  (token {token}; {created} deals created in it)
  amosync       {url}  (log: {log})
  webhooks      {delivered} delivered by the fake amoCRM to {webhook_url}
                (subscribed with `amosync webhooks register`), {stored} deals stored:
{deals}

Look at:
  status page   {page_url}
  one deal      {deal_url}
  health        {health_url}
  counters      {status_command}

Data: {directory}{kept}
""")
MSG_DEAL = N_("                {id}  {name}  RentProg ID {rentprog_id}")
MSG_KEPT = N_(" (kept after exit)")
MSG_DELETED = N_(" (deleted on exit; pass --dir to keep it)")
MSG_SERVE_STOPPED = N_("amosync serve stopped unexpectedly (exit {code}); log: {log}")
MSG_STOPPED = N_("demo stopped.")
MSG_NO_DIR = N_("cannot create --dir {directory}: {error}")
MSG_NO_ANSWER = N_("no answer in {n} s")
# The demo's data, in the reader's language as a user would type it in amoCRM.
DEAL_NAME = N_("Demo rental #{n}")
CONTACT_NAME = N_("Demo client {n}")


class _Stop(Exception):
    """SIGTERM: stop like Ctrl-C."""


@dataclass(frozen=True)
class DemoDeal:
    id: int
    name: str
    rentprog_id: str


def demo(
    port: Annotated[
        int, typer.Option(help="Port for amosync (0: a free one).", min=0, max=65535)
    ] = 0,
    fake_port: Annotated[
        int,
        typer.Option(
            "--fake-port", help="Port for the fake amoCRM (0: a free one).", min=0, max=65535
        ),
    ] = 0,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Directory for the SQLite database and log (default: a temporary one)."
        ),
    ] = None,
    deals: Annotated[int, typer.Option(help="Deals to create and deliver.", min=1, max=50)] = 3,
) -> None:
    """Try the whole pipeline without an amoCRM account (fake amoCRM + serve; Ctrl-C stops)."""
    from amosync.testing import DEFAULT_TOKEN, FakeAmoState, run_fake_in_thread

    keep = directory is not None
    workdir = _prepare_dir(directory)
    typer.echo(_(MSG_STARTING).format(directory=workdir))
    amosync_port = _pick_port(port)
    state = FakeAmoState()
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        with contextlib.ExitStack() as stack:
            try:
                fake_url = stack.enter_context(run_fake_in_thread(state, HOST, fake_port))
            except OSError as exc:
                port_unavailable(HOST, fake_port, "--fake-port", exc)
            secret = secrets.token_hex(8)
            env = _serve_env(workdir, amosync_port, fake_url, secret)
            url = f"http://{HOST}:{amosync_port}"
            log_path = workdir / "serve.log"
            proc = stack.enter_context(_serve(env, workdir, log_path))
            _wait_for_health(url, proc, log_path)
            _register_webhook(env, workdir)
            created = _create_deals(fake_url, deals)
            _wait_until_stored(url, created, proc, log_path)
            delivered = _wait_until_delivered(fake_url, f"{url}/amocrm/{secret}", log_path)
            typer.echo(
                _(MSG_READY).format(
                    fake_url=fake_url,
                    token=DEFAULT_TOKEN,
                    created=len(created),
                    stored=len(created),
                    delivered=delivered,
                    url=url,
                    webhook_url=f"{url}/amocrm/<secret>",
                    log=log_path,
                    deals="\n".join(
                        _(MSG_DEAL).format(id=d.id, name=d.name, rentprog_id=d.rentprog_id)
                        for d in created
                    ),
                    page_url=f"{url}/",
                    deal_url=f"{url}/api/deals/{created[0].id}",
                    health_url=f"{url}/health",
                    status_command=_status_command(env["AMOSYNC_DATABASE_URL"]),
                    directory=workdir,
                    kept=_(MSG_KEPT if keep else MSG_DELETED),
                )
            )
            _run_until_stopped(proc, log_path)
    except (KeyboardInterrupt, _Stop):
        typer.echo(_(MSG_STOPPED))
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _prepare_dir(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="amosync-demo-"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(_(MSG_NO_DIR).format(directory=directory, error=exc.strerror or exc))
    return directory.resolve()


def _pick_port(port: int) -> int:
    """A port `serve` can bind: the one asked for (exit 2 when busy) or a free one."""
    sock = bind_or_exit(HOST, port, "--port")
    chosen = int(sock.getsockname()[1])
    sock.close()  # `serve` binds it again at once (and says so itself if it lost the race)
    return chosen


def _serve_env(workdir: Path, port: int, fake_url: str, secret: str) -> dict[str, str]:
    from amosync.testing import DEFAULT_TOKEN, RENTPROG_FIELD_ID

    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(
        AMOSYNC_DATABASE_URL=f"sqlite:///{workdir / 'amosync.db'}",
        AMOSYNC_HOST=HOST,
        AMOSYNC_PORT=str(port),
        AMOSYNC_AMOCRM_BASE_URL=fake_url,
        AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
        AMOSYNC_RENTPROG_FIELD_ID=str(RENTPROG_FIELD_ID),
        AMOSYNC_WEBHOOK_SECRET=secret,
        # `webhooks register` subscribes this (plain http is allowed for this machine), and
        # the worker's hourly subscription check watches it, as with a real account.
        AMOSYNC_PUBLIC_URL=f"http://{HOST}:{port}",
        AMOSYNC_LOG_FORMAT="console",
    )
    return env


@contextlib.contextmanager
def _serve(env: dict[str, str], workdir: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "amosync", "serve"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _log_tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_health(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            fail(_(MSG_SERVE_DIED).format(code=code, log=_log_tail(log_path)), 1)
        try:
            httpx.get(f"{url}/health", timeout=2.0)  # 503 is fine: it answers
            return
        except httpx.TransportError:
            time.sleep(0.1)
    seconds = f"{HEALTH_TIMEOUT:.0f}"
    fail(_(MSG_NO_HEALTH).format(url=f"{url}/health", seconds=seconds, log=log_path), 1)


def _register_webhook(env: dict[str, str], workdir: Path) -> None:
    """`amosync webhooks register` against the fake, as a user runs it for a real account."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "amosync", "webhooks", "register"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=REGISTER_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        silent = _(MSG_NO_ANSWER).format(n=f"{REGISTER_TIMEOUT:.0f}")
        fail(_(MSG_NOT_REGISTERED).format(code="—", output=silent), 1)
    if done.returncode != 0:
        fail(
            _(MSG_NOT_REGISTERED).format(code=done.returncode, output=done.stdout + done.stderr), 1
        )


def _create_deals(fake_url: str, count: int) -> list[DemoDeal]:
    """Each deal and its contact made through the fake's control API, which sends amoCRM's
    webhooks for them to every subscription."""
    created: list[DemoDeal] = []
    with httpx.Client(base_url=f"{fake_url}/_fake", timeout=10.0) as control:
        for n in range(1, count + 1):
            contact = _control(
                control,
                "contacts",
                "contact",
                name=_(CONTACT_NAME).format(n=n),
                phone=f"+7900555{n:04d}",
                email=f"demo{n}@example.com",
            )
            rentprog_id = f"RP-DEMO-{n}"
            lead = _control(
                control,
                "leads",
                "lead",
                name=_(DEAL_NAME).format(n=n),
                price=1500 * n,
                rentprog_id=rentprog_id,
                contact_id=contact["id"],
            )
            created.append(DemoDeal(int(lead["id"]), str(lead["name"]), rentprog_id))
    return created


def _control(client: httpx.Client, path: str, what: str, **fields: object) -> dict[str, Any]:
    answer = client.post(f"/{path}", json=fields)
    if answer.status_code != 200:
        fail(
            _(MSG_FAKE_REFUSED).format(what=what, status=answer.status_code, body=answer.text[:200])
        )
    made: dict[str, Any] = answer.json()[what]
    return made


def _wait_until_delivered(fake_url: str, destination: str, log_path: Path) -> int:
    """Deliveries the fake made to amosync, once none is pending; 0 delivered is an error."""
    deadline = time.monotonic() + APPLY_TIMEOUT
    stats: dict[str, Any] = {}
    delivered = 0
    while not delivered and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            stats = httpx.get(f"{fake_url}/_fake/deliveries", timeout=2.0).json()
            if stats["pending"] == 0:
                delivered = int(stats["destinations"].get(destination, {}).get("delivered", 0))
        if not delivered:
            time.sleep(0.1)
    if not delivered:
        shown = {k: v for k, v in stats.items() if k != "destinations"}
        seconds = f"{APPLY_TIMEOUT:.0f}"
        fail(_(MSG_NOT_DELIVERED).format(seconds=seconds, stats=shown, log=log_path), 1)
    return delivered


def _wait_until_stored(
    url: str, deals: list[DemoDeal], proc: subprocess.Popen[bytes], log_path: Path
) -> None:
    waiting = {d.id for d in deals}
    deadline = time.monotonic() + APPLY_TIMEOUT
    while waiting and time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(_(MSG_SERVE_DIED).format(code=proc.returncode, log=_log_tail(log_path)), 1)
        for deal_id in sorted(waiting):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/deals/{deal_id}", timeout=2.0).status_code == 200:
                    waiting.discard(deal_id)
        if waiting:
            time.sleep(0.2)
    if waiting:
        seconds = f"{APPLY_TIMEOUT:.0f}"
        fail(_(MSG_NOT_APPLIED).format(seconds=seconds, log=log_path), 1)


def _status_command(database_url: str) -> str:
    program = sys.argv[0]
    command = (
        shlex.quote(os.path.abspath(program))  # copied into another directory's shell too
        if Path(program).name == "amosync"
        else f"{shlex.quote(sys.executable)} -m amosync"
    )
    return f"AMOSYNC_DATABASE_URL={shlex.quote(database_url)} {command} status"


def _run_until_stopped(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    while True:
        try:
            code = proc.wait(0.5)
        except subprocess.TimeoutExpired:
            continue
        fail(_(MSG_SERVE_STOPPED).format(code=code, log=log_path), 1)
