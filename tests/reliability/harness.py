"""Tools for the reliability scenarios: real `amosync` processes, a load generator posting real
fixture bodies, and the checks that prove nothing acknowledged was lost.

Everything here talks to the code under test only from the outside (HTTP, signals, SQL), as
amoCRM and an operator would.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from amosync.core.webhook import parse_webhook
from amosync.db.urls import sync_url
from amosync.testing import DEFAULT_TOKEN, RENTPROG_FIELD_ID, FakeAmoState, rentprog_field

DATA = Path(__file__).parent.parent / "data"
AMOSYNC = [sys.executable, "-m", "amosync"]
SECRET = "reliability-secret-9f3a"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# Real single-lead webhook bodies; the lead id in each is replaced per delivery.
LEAD_TEMPLATES = [
    "webhook_leads_add_2016_zapier.form",
    "webhook_leads_add_2025_etesttask.form",
    "webhook_leads_add_2025_unirock.form",
    "webhook_leads_restore_kommo_docs.form",
    "webhook_leads_status_2016_zapier.form",
    "webhook_leads_status_custom_fields_2021_irestoremoldova.form",
    "webhook_leads_status_cyrillic_2018_apfitness.form",
    "webhook_leads_update_2016_zapier.form",
    "webhook_leads_update_2025_unirock.form",
    "webhook_leads_update_custom_fields_2025_etesttask.form",
]
# Bodies of kinds amosync does not sync: they must end `ignored`, never lost.
IGNORED_TEMPLATES = ["webhook_task_add_kommo_docs.form", "webhook_talk_add_kommo_docs.form"]
_LEAD_ID = re.compile(rb"(leads%5B[a-z]+%5D%5B0%5D%5Bid%5D=)(\d+)")


def lead_body(template: str, lead_id: int) -> bytes:
    """A real fixture body about `lead_id` instead of the lead it was captured for."""
    body = (DATA / template).read_bytes().strip()
    replaced, n = _LEAD_ID.subn(lambda m: m.group(1) + str(lead_id).encode(), body)
    assert 1 == n, template
    return replaced


def expected_rows(body: bytes) -> int:
    return len(parse_webhook(body).items)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_leads(fake: FakeAmoState, first_id: int, count: int) -> list[int]:
    ids = []
    for n in range(count):
        lead = fake.add_lead(
            id=first_id + n,
            name=f"Lead {n}",
            price=100 + n,
            custom_fields_values=[rentprog_field(f"RP-{first_id + n}")],
        )
        ids.append(int(lead["id"]))
    return ids


# -- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    cwd: Path | None = None  # None: the test runner's (a `.env` there would be read)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(self.env)
        if self.port is not None:
            env["AMOSYNC_PORT"] = str(self.port)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [*AMOSYNC, *self.args], env=env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.starts += 1
        if self.port is not None:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.popen.returncode}: {self.output()}")
            try:
                httpx.get(f"{self.url}/health", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not answer within {timeout} s")

    def kill9(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.popen is None or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else 0
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
            raise AssertionError(f"{self.name} ignored SIGTERM for {timeout} s") from None

    def rss_kib(self) -> int:
        assert self.popen is not None
        status = Path(f"/proc/{self.popen.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Fleet:
    """The amosync processes of one scenario, all on one database and one fake amoCRM."""

    def __init__(
        self,
        db_url: str,
        fake_url: str,
        tmp_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        tuned: bool = True,
    ) -> None:
        """`env`: settings of the scenario on top. `tuned=False`: only what amosync cannot
        run without (database, account, token, secret), every other setting its default."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
        base.update(
            AMOSYNC_DATABASE_URL=db_url,
            AMOSYNC_AMOCRM_BASE_URL=fake_url,
            AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
            AMOSYNC_WEBHOOK_SECRET=SECRET,
        )
        if tuned:
            base.update(
                AMOSYNC_RENTPROG_FIELD_ID=str(RENTPROG_FIELD_ID),
                AMOSYNC_LOG_FORMAT="json",
                AMOSYNC_WORKER_LINGER="0.05",
                AMOSYNC_WORKER_POLL_INTERVAL="0.05",
                AMOSYNC_RETRY_BASE_DELAY="0.2",
                AMOSYNC_RETRY_MAX_DELAY="2",
            )
        base.update(env or {})
        self.env = base
        self.tmp_path = tmp_path
        # Untuned runs start in the test's folder, so no `.env` of the checkout is read.
        self.cwd = None if tuned else tmp_path
        self.procs: list[Proc] = []

    def web(self, name: str = "web", *, worker: bool = False) -> Proc:
        args = ["serve"] if worker else ["serve", "--no-worker"]
        return self._add(Proc(name, args, self.env, self.tmp_path / f"{name}.log", free_port()))

    def worker(self, name: str = "worker") -> Proc:
        return self._add(Proc(name, ["worker"], self.env, self.tmp_path / f"{name}.log"))

    def _add(self, proc: Proc) -> Proc:
        proc.cwd = self.cwd
        self.procs.append(proc)
        proc.start()
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(AssertionError):
                proc.terminate()

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.procs)


# -- load ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    posted: int = 0
    acked: dict[str, int] = field(default_factory=dict)  # request id -> rows expected
    refused: int = 0  # attempts answered anything but 200, or not answered
    gave_up: int = 0  # deliveries never answered 200 (amoCRM would keep trying)
    statuses: dict[int, int] = field(default_factory=dict)
    lead_ids: set[int] = field(default_factory=set)

    @property
    def acked_rows(self) -> int:
        return sum(self.acked.values())


class LoadGenerator:
    """Posts real fixture bodies about `lead_ids` round-robin to `targets` from a thread.

    Each delivery carries a unique `X-amoCRM-RequestId`, which the receiver stores in every
    row, so each acknowledged delivery can be found afterwards.
    """

    def __init__(
        self,
        targets: list[str],
        lead_ids: list[int],
        *,
        rate: float = 80.0,
        seed: int = 6,
        ignored_every: int = 10,
        change_every: int = 0,
        fake: FakeAmoState | None = None,
    ) -> None:
        self._fake = fake
        self._change_every = change_every
        self._targets = targets
        self._lead_ids = lead_ids
        self._interval = 1.0 / rate
        self._random = random.Random(seed)
        self._ignored_every = ignored_every
        self.result = LoadResult()
        self._stop = threading.Event()
        self._retry_targets = itertools.cycle(targets)
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> LoadResult:
        self._stop.set()
        self._thread.join(timeout=40)
        return self.result

    def _bodies(self) -> Any:
        ids = itertools.cycle(self._lead_ids)
        for n in itertools.count():
            if self._ignored_every and n % self._ignored_every == self._ignored_every - 1:
                yield (DATA / self._random.choice(IGNORED_TEMPLATES)).read_bytes().strip(), None
            else:
                lead_id = next(ids)
                yield lead_body(self._random.choice(LEAD_TEMPLATES), lead_id), lead_id

    def _run(self) -> None:
        targets = itertools.cycle(self._targets)
        bodies = self._bodies()
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                body, lead_id = next(bodies)
                self._maybe_change(lead_id)
                self.post(client, next(targets), body, lead_id)
                time.sleep(self._interval)

    def _maybe_change(self, lead_id: int | None) -> None:
        """Now and then change the lead in the fake first, as a user editing it in amoCRM."""
        if self._fake is None or lead_id is None or not self._change_every:
            return
        if self._random.randrange(self._change_every) == 0:
            self._fake.update_lead(lead_id, price=self._random.randrange(1, 10**6))

    def post(self, client: httpx.Client, target: str, body: bytes, lead_id: int | None) -> None:
        """Deliver until answered 200, as amoCRM retries a failed delivery (here at once, and
        at most for 30 s). Each attempt has its own request id."""
        result = self.result
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            request_id = uuid.uuid4().hex
            result.posted += 1
            try:
                answer = client.post(
                    f"{target}/amocrm/{SECRET}",
                    content=body,
                    headers={**FORM, "X-amoCRM-RequestId": request_id},
                )
                status = answer.status_code
            except httpx.TransportError:
                status = 0
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 200:
                result.acked[request_id] = expected_rows(body)
                if lead_id is not None:
                    result.lead_ids.add(lead_id)
                return
            result.refused += 1
            time.sleep(0.1)
            target = next(self._retry_targets)
        result.gave_up += 1


def report(scenario: str, **figures: Any) -> None:
    """Append this run's figures to $RELIABILITY_REPORT (used for docs/RELIABILITY.md)."""
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps({"scenario": scenario, **figures}, sort_keys=True) + "\n")


# -- database checks -------------------------------------------------------------------------


_ENGINES: dict[str, Engine] = {}


def query(db_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement; engines are kept per URL so a fuzz loop does not reconnect."""
    engine = _ENGINES.get(db_url)
    if engine is None:
        engine = _ENGINES[db_url] = create_engine(sync_url(db_url), pool_pre_ping=True)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


def wait_drained(db_url: str, timeout: float) -> float:
    """Seconds until no event is pending; fails the test after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pending = query(
            db_url, "SELECT count(*) FROM amocrm_webhook_events WHERE status = 'pending'"
        )[0][0]
        if pending == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    statuses = query(db_url, "SELECT status, count(*) FROM amocrm_webhook_events GROUP BY status")
    raise AssertionError(f"not drained after {timeout} s: {statuses}")


def rows_per_request(db_url: str) -> dict[str, int]:
    rows = query(
        db_url,
        "SELECT request_id, count(*) FROM amocrm_webhook_events "
        "WHERE request_id IS NOT NULL GROUP BY request_id",
    )
    return {str(r[0]): int(r[1]) for r in rows}


def lost_acknowledged(db_url: str, load: LoadResult) -> dict[str, tuple[int, int]]:
    """Acknowledged deliveries whose rows are not all in the events table: must be empty."""
    stored = rows_per_request(db_url)
    return {
        rid: (rows, stored.get(rid, 0))
        for rid, rows in load.acked.items()
        if stored.get(rid, 0) != rows
    }


def status_counts(db_url: str) -> dict[str, int]:
    rows = query(db_url, "SELECT status, count(*) FROM amocrm_webhook_events GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


def deal_mismatches(db_url: str, fake: FakeAmoState, lead_ids: set[int]) -> list[str]:
    """Leads whose stored row differs from the fake's current state (name, price, status)."""
    stored = {
        int(r[0]): (r[1], r[2], r[3], bool(r[4]))
        for r in query(db_url, "SELECT id, name, price, status_id, is_deleted FROM amocrm_deals")
    }
    problems = []
    for lead_id in sorted(lead_ids):
        entity = fake.table("leads").get(lead_id)
        if entity is None:
            problems.append(f"{lead_id}: not in the fake")
            continue
        fields = entity.fields
        if entity.is_deleted and lead_id not in stored:
            continue  # deleted before it was ever stored: no row is right (no stub rows)
        if entity.is_deleted:
            # A deal amoCRM no longer returns is only marked deleted; the rest is kept.
            want: tuple[Any, ...] = (True,)
            got: tuple[Any, ...] | None = stored[lead_id][3:] if lead_id in stored else None
        else:
            want = (fields.get("name"), fields.get("price"), fields.get("status_id"), False)
            got = stored.get(lead_id)
        if got != want:
            problems.append(f"{lead_id}: stored {got} != fake {want}")
    return problems


def densest_second(fake: FakeAmoState, prefix: str = "/api/v4/") -> list[tuple[float, int]]:
    """The requests of the busiest one-second window (offsets from its first, status): for
    assertion messages."""
    times = sorted((r.at, r.status) for r in fake.calls(prefix))
    best: list[tuple[float, int]] = []
    first = 0
    for last in range(len(times)):
        while times[last][0] - times[first][0] >= 1.0:
            first += 1
        if last - first + 1 > len(best):
            best = times[first : last + 1]
    return [(round(at - best[0][0], 3), status) for at, status in best]
