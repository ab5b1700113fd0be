"""A first run that cannot go wrong, as a user meets it: real processes and ports.

`amosync demo` end to end; a busy port is one line and exit 2 for every listener; unknown
`AMOSYNC_*` variables and competing tokens are said at start-up, by `doctor` and by
`auth status`; the `auth login` browser page tells the outcome of the exchange.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from amosync.db.database import Database
from amosync.testing import DEFAULT_TOKEN, FakeAmoState, run_fake_in_thread
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET
from tests.english_words import english_words

AMOSYNC = [sys.executable, "-m", "amosync"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(extra)
    return env


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AMOSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "amosync.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


# -- amosync demo -------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_demo_delivers_deals_prints_working_urls_and_stops(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """`amosync demo`: deals arrive as webhooks the fake amoCRM delivers to the URL the demo
    subscribed, the printed URLs and status command work, and a signal stops amosync and
    the fake (exit 0, nothing listening any more)."""
    proc = subprocess.Popen(
        [*AMOSYNC, "demo", "--dir", str(tmp_path / "demo")],
        env=clean_env(),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed = _read_until(proc, "Data: ", timeout=90)
        urls = dict(re.findall(r"^  (status page|one deal|health)\s+(\S+)$", printed, re.M))
        fake_url = re.search(r"^  fake amoCRM\s+(http\S+)", printed, re.M)
        command = re.search(r"counters\s+AMOSYNC_DATABASE_URL=(\S+) ", printed)
        assert urls.keys() == {"status page", "one deal", "health"}, printed
        assert fake_url is not None, printed
        assert command is not None, printed

        deal = httpx.get(urls["one deal"], timeout=5)
        deliveries = httpx.get(f"{fake_url.group(1)}/_fake/deliveries", timeout=5).json()
        subscriptions = httpx.get(
            f"{fake_url.group(1)}/api/v4/webhooks",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
            timeout=5,
        ).json()["_embedded"]["webhooks"]
        page = httpx.get(urls["status page"], timeout=5)
        health = httpx.get(urls["health"], timeout=5)
        status = run(
            "status",
            "--json",
            env=clean_env(AMOSYNC_DATABASE_URL=command.group(1)),
            cwd=tmp_path,
        )
        proc.send_signal(stop)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()

    assert 200 == deal.status_code, deal.text
    assert "RP-DEMO-1" == deal.json()["rentprog_id"]
    # The fake delivered them: one subscription, registered by the demo, took a deal and a
    # contact webhook per deal, each with amoCRM's request id header, none failed.
    [ours] = subscriptions
    destination = ours["destination"]
    assert destination.startswith(urls["health"].removesuffix("/health") + "/amocrm/")
    assert {"delivered": 6, "failed": 0} == {
        k: deliveries["destinations"][destination][k] for k in ("delivered", "failed")
    }
    assert "6 delivered by the fake amoCRM" in printed
    events = _events(command.group(1))
    assert [("contacts", "add")] * 3 + [("leads", "add")] * 3 == sorted(e[:2] for e in events)
    assert all(re.fullmatch(r"[0-9a-f-]{36}", str(e[2])) for e in events), events
    assert 200 == page.status_code
    assert health.status_code in (200, 503)
    assert 0 == status.returncode, status.stderr
    assert 3 == orjson.loads(status.stdout)["deals"], status.stdout
    assert 0 == proc.returncode, printed + rest
    assert "demo stopped." in rest
    for url in (urls["health"], fake_url.group(1)):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)


def _events(database_url: str) -> list[tuple[object, ...]]:
    """(entity, action, request id) of every stored webhook event, in arrival order."""
    with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
        query = "SELECT entity, action, request_id FROM amocrm_webhook_events ORDER BY id"
        return list(db.execute(query))


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"demo exited ({proc.wait()}): {''.join(lines)}")
        lines.append(line)
        if line.startswith(marker):
            return "".join(lines)
    raise AssertionError(f"no {marker!r} within {timeout} s: {''.join(lines)}")


# -- busy ports ---------------------------------------------------------------------------


def _assert_one_line_exit_2(
    result: subprocess.CompletedProcess[str], port: int, setting: str
) -> None:
    output = result.stdout + result.stderr
    assert 2 == result.returncode, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("amosync:")]
    assert 1 == len(errors), output
    assert str(port) in errors[0], errors[0]
    assert setting in errors[0], errors[0]
    assert "listening" not in output


def test_serve_on_a_busy_port_is_one_line_and_exit_2(
    busy_port: int, sqlite_url: str, tmp_path: Path
) -> None:
    env = clean_env(AMOSYNC_DATABASE_URL=sqlite_url, AMOSYNC_PORT=str(busy_port))
    _assert_one_line_exit_2(run("serve", env=env, cwd=tmp_path), busy_port, "AMOSYNC_PORT")


@pytest.mark.parametrize(
    ("command", "option"),
    [(("dev", "fake-amocrm"), "--port"), (("demo",), "--port"), (("demo",), "--fake-port")],
)
def test_fake_amocrm_and_demo_on_a_busy_port_are_one_line_and_exit_2(
    busy_port: int, tmp_path: Path, command: tuple[str, ...], option: str
) -> None:
    result = run(*command, option, str(busy_port), env=clean_env(), cwd=tmp_path)
    _assert_one_line_exit_2(result, busy_port, option)


def test_auth_login_on_a_busy_port_is_one_line_and_exit_2(
    busy_port: int, sqlite_url: str, tmp_path: Path
) -> None:
    env = _oauth_env(sqlite_url, "https://example.amocrm.ru", busy_port)
    result = run("auth", "login", "--timeout", "5", env=env, cwd=tmp_path)
    _assert_one_line_exit_2(result, busy_port, "--port")
    assert "oauth?" not in result.stdout  # no consent link for a listener that cannot run


def _oauth_env(db_url: str, base_url: str, port: int, **extra: str) -> dict[str, str]:
    values = {
        "AMOSYNC_DATABASE_URL": db_url,
        "AMOSYNC_AMOCRM_BASE_URL": base_url,
        "AMOSYNC_AMOCRM_CLIENT_ID": FAKE_CLIENT_ID,
        "AMOSYNC_AMOCRM_CLIENT_SECRET": FAKE_CLIENT_SECRET,
        "AMOSYNC_AMOCRM_REDIRECT_URI": f"http://127.0.0.1:{port}/oauth/callback",
    }
    return clean_env(**{**values, **extra})


# -- what the configuration means -----------------------------------------------------------


def test_unknown_variables_are_logged_at_start_and_shown_by_doctor(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A typo in .env and one in the environment: a warning naming the closest setting at
    start-up, and a doctor warning; AMOSYNC_TEST_PG_URL (the test suite's) is not flagged."""
    (tmp_path / ".env").write_text("AMOSYNC_RENTPROG_FEILD_ID=700001\n")
    env = clean_env(
        AMOSYNC_DATABASE_URL=sqlite_url,
        AMOSYNC_LOG_FORMAT="json",
        AMOSYNC_WEBHOK_SECRET="x",
        AMOSYNC_TEST_PG_URL="postgresql://postgres@127.0.0.1/postgres",
    )
    started = run("worker", "--once", env=env, cwd=tmp_path)
    doctor = run("doctor", "--json", "--service-url", "http://127.0.0.1:9", env=env, cwd=tmp_path)

    lines = [
        orjson.loads(x)
        for x in started.stdout.splitlines() + started.stderr.splitlines()
        if x.startswith("{")
    ]
    warned = {x["variable"]: x["closest"] for x in lines if x.get("event") == "unknown_setting"}
    assert {
        "AMOSYNC_RENTPROG_FEILD_ID": "AMOSYNC_RENTPROG_FIELD_ID",
        "AMOSYNC_WEBHOK_SECRET": "AMOSYNC_WEBHOOK_SECRET",
    } == warned, started.stdout + started.stderr
    checks = {c["name"]: c for c in orjson.loads(doctor.stdout)["checks"]}
    unknown = checks["unknown_variables"]
    assert "warn" == unknown["status"]
    assert "did you mean AMOSYNC_RENTPROG_FIELD_ID?" in unknown["detail"]
    assert "TEST_PG_URL" not in unknown["detail"]


def test_a_person_reading_the_start_is_told_in_russian_and_the_log_stays_english(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Readable log lines (a person watches): the start-up's facts are also said on stderr in
    AMOSYNC_LANG; the log lines themselves stay English. JSON logs get no such lines."""
    env = clean_env(
        AMOSYNC_DATABASE_URL=sqlite_url,
        AMOSYNC_LANG="ru",
        AMOSYNC_LOG_FORMAT="console",
        AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
        AMOSYNC_AMOCRM_CLIENT_ID="some-client-id",
        AMOSYNC_WEBHOK_SECRET="x",
    )
    started = run("worker", "--once", env=env, cwd=tmp_path)
    machine = run("worker", "--once", env={**env, "AMOSYNC_LOG_FORMAT": "json"}, cwd=tmp_path)

    said = started.stderr
    assert "воркер обрабатывает сохранённые события" in said, said
    assert "токен amoCRM: OAuth" in said, said
    assert "AMOSYNC_WEBHOK_SECRET (в окружении) — не настройка amosync" in said, said
    assert "используется OAuth, долгосрочный токен не учитывается" in said, said
    assert [] == english_words(said, "amosync"), said
    assert "unknown_setting" in started.stdout  # the log: English, for log readers
    assert all(line.startswith("{") for line in machine.stderr.splitlines()), machine.stderr


def test_both_tokens_configured_is_said_by_serve_doctor_and_auth_status(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Long-lived token and OAuth client id together: OAuth is used, and every place that
    shows the choice says so; doctor does not ask to set the token that is set."""
    env = _oauth_env(
        sqlite_url,
        "https://example.amocrm.ru",
        8080,
        AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=DEFAULT_TOKEN,
        AMOSYNC_LOG_FORMAT="json",
    )
    started = run("worker", "--once", env=env, cwd=tmp_path)
    status = run("auth", "status", env=env, cwd=tmp_path)
    doctor = run("doctor", "--json", "--service-url", "http://127.0.0.1:9", env=env, cwd=tmp_path)

    log = started.stdout + started.stderr
    assert '"event":"amocrm_token"' in log, log
    assert '"uses":"oauth"' in log, log
    assert '"event":"amocrm_token_ambiguous"' in log
    assert "OAuth is used and the long-lived token is ignored" in status.stdout, status.stdout
    checks = {c["name"]: c for c in orjson.loads(doctor.stdout)["checks"]}
    assert "warn" == checks["token_choice"]["status"]
    assert "OAuth is used" in checks["token_choice"]["detail"]
    said = doctor.stdout
    assert "set AMOSYNC_AMOCRM_LONG_LIVED_TOKEN" not in said.replace(
        "unset AMOSYNC_AMOCRM_LONG_LIVED_TOKEN", ""
    ), said


def _login_once(
    db_url: str, tmp_path: Path, headers: dict[str, str], **extra: str
) -> tuple[subprocess.CompletedProcess[str], httpx.Response, httpx.Response]:
    """`amosync auth login` against the fake: a stray request (wrong state), then the
    redirect with a fresh code; the pages the browser got for both and the command's end."""
    fake = FakeAmoState(rate_limit_rps=None)
    with run_fake_in_thread(fake) as base_url:
        port = _free_port()
        fake.oauth.redirect_uri = f"http://127.0.0.1:{port}/oauth/callback"
        env = _oauth_env(db_url, base_url, port, **extra)
        proc = subprocess.Popen(
            [*AMOSYNC, "auth", "login", "--timeout", "30"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            state = parse_qs(urlsplit(proc.stdout.readline().strip()).query)["state"][0]
            stray = _get_when_listening(f"{fake.oauth.redirect_uri}?code=x&state=old", headers)
            code = fake.oauth.issue_code()
            page = _get_when_listening(
                f"{fake.oauth.redirect_uri}?code={code}&state={state}&referer=127.0.0.1", headers
            )
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), page, stray


def test_auth_login_page_says_when_the_exchange_failed(sqlite_url: str, tmp_path: Path) -> None:
    """A wrong client secret: the browser page says connecting failed (not "received"), the
    command exits 1 naming the secret setting, not the 20-minute code rule."""
    done, page, _ = _login_once(sqlite_url, tmp_path, {}, AMOSYNC_AMOCRM_CLIENT_SECRET="wrong")
    err = done.stderr

    assert 1 == done.returncode, err
    assert page.status_code >= 400
    assert "failed" in page.text
    assert "received the authorization" not in page.text
    assert "AMOSYNC_AMOCRM_CLIENT_SECRET" in page.text
    assert "AMOSYNC_AMOCRM_CLIENT_SECRET" in err
    assert "20 minutes" not in err


def test_auth_login_pages_speak_the_browsers_language(sqlite_url: str, tmp_path: Path) -> None:
    """The browser asks for Russian (the CLI speaks English): the failure page, and the page
    for a stray link, are Russian with no English words beyond names and ids."""
    done, page, stray = _login_once(
        sqlite_url,
        tmp_path,
        {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"},
        AMOSYNC_AMOCRM_CLIENT_SECRET="wrong",
    )

    assert 1 == done.returncode, done.stderr
    assert '<html lang="ru">' in page.text or "<html lang=ru>" in page.text
    assert "подключиться не удалось" in page.text, page.text
    assert "AMOSYNC_AMOCRM_CLIENT_SECRET" in page.text
    assert 400 == stray.status_code
    assert "Эта ссылка не от запущенной" in stray.text, stray.text
    for shown in (page, stray):
        text = html.unescape(re.sub(r"<[^>]*>", " ", shown.text))
        # the fake's 401 says "Client authentication failed", as amoCRM does: its own words
        assert [] == english_words(text, "Client", "authentication", "failed"), text
    assert "failed" in done.stderr  # the terminal keeps the CLI's language


def test_auth_login_success_page_follows_amosync_lang(sqlite_url: str, tmp_path: Path) -> None:
    """No language asked by the browser: the CLI's (AMOSYNC_LANG=ru) decides the tab's."""
    done, page, _ = _login_once(sqlite_url, tmp_path, {}, AMOSYNC_LANG="ru")

    assert 0 == done.returncode, done.stderr
    assert 200 == page.status_code
    assert "amosync подключён к amoCRM: токены сохранены" in page.text, page.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_when_listening(
    url: str, headers: dict[str, str] | None = None, attempts: int = 100
) -> httpx.Response:
    for _ in range(attempts):
        try:
            return httpx.get(url, headers=headers, timeout=30)
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on {url}")


# -- copy-db and running processes ---------------------------------------------------------


def test_copy_db_force_refuses_a_target_a_worker_runs_on(
    sqlite_url: str, sqlite_template: Path, tmp_path: Path
) -> None:
    """The incident: `copy-db --force` wiped a target a worker was running on. Now exit 1
    naming the worker; `--even-if-running` overrides."""
    import asyncio

    from amosync.worker.heartbeat import WorkerState, beat

    async def beat_once() -> str:
        database = Database.open(sqlite_url)
        try:
            worker = WorkerState()
            await beat(database, worker)
            return worker.id
        finally:
            await database.dispose()

    worker_id = asyncio.run(beat_once())
    source = tmp_path / "source.db"
    shutil.copy(sqlite_template, source)
    args = ("copy-db", "--from", f"sqlite:///{source}", "--to", sqlite_url, "--force")

    refused = run(*args, env=clean_env(), cwd=tmp_path)
    forced = run(*args, "--even-if-running", env=clean_env(), cwd=tmp_path)

    assert 1 == refused.returncode, refused.stdout + refused.stderr
    assert f"worker {worker_id}" in refused.stderr
    assert "--even-if-running" in refused.stderr
    assert 0 == forced.returncode, forced.stderr
