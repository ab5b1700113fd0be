"""`amosync auth` as a user runs it: a real process, a real port, the fake amoCRM."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text

from amosync.cli.auth import consent_url
from amosync.db.urls import sync_url
from amosync.settings import Settings
from amosync.testing import FakeAmoState, run_fake_in_thread
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REDIRECT_URI

AMOSYNC = [sys.executable, "-m", "amosync"]


@pytest.fixture
def fake_url() -> Iterator[tuple[FakeAmoState, str]]:
    fake = FakeAmoState(rate_limit_rps=None)
    with run_fake_in_thread(fake) as url:
        yield fake, url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "amosync.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


def env_for(db_url: str, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    env.update(
        AMOSYNC_DATABASE_URL=db_url,
        AMOSYNC_AMOCRM_BASE_URL=base_url,
        AMOSYNC_AMOCRM_CLIENT_ID=FAKE_CLIENT_ID,
        AMOSYNC_AMOCRM_CLIENT_SECRET=FAKE_CLIENT_SECRET,
        AMOSYNC_AMOCRM_REDIRECT_URI=FAKE_REDIRECT_URI,
    )
    env.update(extra)
    return env


def amosync(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AMOSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def token_row(db_url: str) -> tuple[str, str, int] | None:
    engine = create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT access_token, refresh_token, version FROM amocrm_oauth_tokens")
            ).first()
            return None if row is None else (str(row[0]), str(row[1]), int(row[2]))
    finally:
        engine.dispose()


def test_exchange_stores_tokens_and_prints_no_secret(
    fake_url: tuple[FakeAmoState, str], sqlite_url: str, tmp_path: Path
) -> None:
    """`auth exchange` stores a working pair and prints expiry only; `auth status` agrees."""
    fake, base_url = fake_url
    env = env_for(sqlite_url, base_url)

    # Pasting the whole redirect URL works as well as the bare code.
    pasted = f"{FAKE_REDIRECT_URI}?code={fake.oauth.issue_code()}&state=s&referer=x.amocrm.ru"
    done = amosync("auth", "exchange", pasted, env=env, cwd=tmp_path)
    shown = amosync("auth", "status", env=env, cwd=tmp_path)

    row = token_row(sqlite_url)
    assert row is not None
    output = done.stdout + done.stderr + shown.stdout + shown.stderr
    assert (0, 0, 1) == (done.returncode, shown.returncode, row[2]), output
    assert "OAuth tokens stored" in done.stdout
    assert "Refresh token: dies" in shown.stdout
    assert [] == [s for s in (row[0], row[1], FAKE_CLIENT_SECRET) if s in output]
    assert (
        200
        == httpx.get(
            f"{base_url}/api/v4/account", headers={"Authorization": f"Bearer {row[0]}"}
        ).status_code
    )


def test_reused_code_exits_1_with_amocrm_hint(
    fake_url: tuple[FakeAmoState, str], sqlite_url: str, tmp_path: Path
) -> None:
    """A code used twice: exit 1 with amoCRM's hint and how to get a new code."""
    fake, base_url = fake_url
    env = env_for(sqlite_url, base_url)
    code = fake.oauth.issue_code()
    amosync("auth", "exchange", code, env=env, cwd=tmp_path)

    again = amosync("auth", "exchange", code, env=env, cwd=tmp_path)

    assert 1 == again.returncode
    assert "Authorization code has been revoked" in again.stderr
    assert "amosync auth url" in again.stderr


def test_missing_oauth_settings_exit_2_naming_them(tmp_path: Path, sqlite_url: str) -> None:
    """Without secret and redirect URI, `exchange` exits 2 naming both; `url` needs the id."""
    env = env_for(sqlite_url, "https://example.amocrm.ru")
    del env["AMOSYNC_AMOCRM_CLIENT_SECRET"], env["AMOSYNC_AMOCRM_REDIRECT_URI"]
    no_id = {k: v for k, v in env.items() if k != "AMOSYNC_AMOCRM_CLIENT_ID"}

    exchange = amosync("auth", "exchange", "some-code", env=env, cwd=tmp_path)
    url = amosync("auth", "url", env=no_id, cwd=tmp_path)

    assert (2, 2) == (exchange.returncode, url.returncode)
    assert "AMOSYNC_AMOCRM_CLIENT_SECRET, AMOSYNC_AMOCRM_REDIRECT_URI" in exchange.stderr
    assert "AMOSYNC_AMOCRM_CLIENT_ID" in url.stderr


def test_login_waits_for_the_redirect_and_checks_state(
    fake_url: tuple[FakeAmoState, str], sqlite_url: str, tmp_path: Path
) -> None:
    """`auth login` ignores a redirect with a foreign state, then exchanges the real one."""
    fake, base_url = fake_url
    redirect_uri = f"http://127.0.0.1:{free_port()}/oauth/callback"
    fake.oauth.redirect_uri = redirect_uri
    env = env_for(sqlite_url, base_url, AMOSYNC_AMOCRM_REDIRECT_URI=redirect_uri)
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
        link = proc.stdout.readline().strip()
        state = parse_qs(urlsplit(link).query)["state"][0]
        code = fake.oauth.issue_code()
        forged = _get_when_listening(f"{redirect_uri}?code={code}&state=forged")
        real = httpx.get(f"{redirect_uri}?code={code}&state={state}&referer=127.0.0.1")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()

    assert (400, 200, 0) == (forged.status_code, real.status_code, proc.returncode), err
    assert "OAuth tokens stored" in out
    assert 1 == fake.oauth.code_exchanges


def test_consent_url_for_amocrm_and_kommo() -> None:
    """The consent link goes to www.amocrm.ru, or www.kommo.com for *.kommo.com accounts."""
    amo = Settings(_env_file=None, amocrm_subdomain="example")
    kommo_url = "https://example.kommo.com"
    kommo = Settings(_env_file=None, amocrm_base_url=kommo_url)

    assert [
        "https://www.amocrm.ru/oauth?client_id=abc&state=s1&mode=post_message",
        "https://www.kommo.com/oauth?client_id=abc&state=s1&mode=post_message",
    ] == [consent_url(amo, "abc", "s1"), consent_url(kommo, "abc", "s1")]


def free_port() -> int:
    """A free TCP port on loopback (closed again, so the CLI can bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_when_listening(url: str, attempts: int = 100) -> httpx.Response:
    """The CLI prints the link before its listener is up: retry until it answers."""
    for _ in range(attempts):
        try:
            return httpx.get(url)
        except httpx.ConnectError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on {url}")
