"""README's quick start and `amosync demo`, run as written on a fresh clone (issue #22).

The commands come from README.md itself (its "Quick start" and "Try it without an amoCRM
account" blocks), so the README and this test cannot drift. They run in a `git clone` of this
repository, the way a new user (and .ci/run) starts: nothing installed, no `.env`, no
database; `scripts/serve` installs into the clone's own .venv. Only the port is changed, with
AMOSYNC_PORT (3000 may be taken here). The clone has the committed state: run it after
committing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import free_port
from tests.e2e.test_setup_guide import FENCE, commands
from tests.english_words import english_words

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WEBHOOK = ROOT / "tests" / "data" / "webhook_leads_add_2025_unirock.form"
# `scripts/serve` on a fresh clone: venv + pip install, about 40 s on an idle 2-core host and
# over 90 s while the suite's other processes share it.
INSTALL_TIMEOUT = 240.0

# The install counts in the first test's time: the per-test guard (120 s) would cut it short.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT + 180)]


def section(heading: str) -> str:
    """README's text under `heading` (a `## …` or `### …` line) up to the next heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    rest = text[start + len(heading) + 2 :]
    following = re.search(r"^#{1,3} ", rest, re.M)
    return rest[: following.start()] if following else rest


def section_commands(heading: str) -> list[str]:
    return [
        c for lang, body in FENCE.findall(section(heading)) if lang == "sh" for c in commands(body)
    ]


def _user_env(**extra: str) -> dict[str, str]:
    """A user's shell: none of the test run's AMOSYNC_* settings or virtualenv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AMOSYNC_", "VIRTUAL_ENV", "PYTHONPATH", "COV_"))
    }
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir)
    return {**env, **extra}


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    target = tmp_path_factory.mktemp("fresh") / "amosync"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=60)
    return target


@pytest.fixture(scope="module")
def serving(clone: Path) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """The quick start's serve command, as written, in the clone; its URL, process and log."""
    [serve] = [c for c in section_commands("## Quick start") if "serve" in c]
    assert "scripts/serve" == serve  # the README's command, run as the user types it
    port = free_port()
    log = clone / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", serve],
            cwd=clone,
            env=_user_env(AMOSYNC_PORT=str(port)),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/health/live", proc, log, INSTALL_TIMEOUT)
        yield url, proc, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(url: str, proc: subprocess.Popen[str], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()}")


def test_quick_start_serves_before_any_configuration(
    clone: Path, serving: tuple[str, subprocess.Popen[str], Path]
) -> None:
    """What the README promises right under the commands: it works before any configuration,
    webhooks are accepted and stored (in ./amosync.db), /health says what is missing, and
    `.env.example` is there to copy."""
    url, proc, log = serving
    said = section("## Quick start")
    assert "webhooks are accepted and stored" in said
    assert "SQLite ./amosync.db" in said

    page = httpx.get(f"{url}/", timeout=10)
    accepted = httpx.post(
        f"{url}/amocrm",
        content=WEBHOOK.read_bytes(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    health = httpx.get(f"{url}/health", timeout=10)

    assert 200 == page.status_code, page.text
    assert "amosync" in page.text
    assert 200 == accepted.status_code, accepted.text
    with sqlite3.connect(clone / "amosync.db") as db:
        [(stored,)] = db.execute("SELECT count(*) FROM amocrm_webhook_events").fetchall()
    assert stored >= 1
    assert 503 == health.status_code  # not configured yet, and it says what is missing
    credentials = health.json()["checks"]["amocrm_credentials"]
    assert "AMOSYNC_AMOCRM_SUBDOMAIN" in str(credentials), credentials
    assert (clone / ".env.example").is_file()
    assert proc.poll() is None, log.read_text()


def test_readme_demo_runs_on_the_fresh_clone_in_russian(
    clone: Path, serving: tuple[str, subprocess.Popen[str], Path]
) -> None:
    """The "try it" command as written (the clone was installed by `scripts/serve`),
    in Russian: it prints where to look with no English words beyond names, the URLs it
    prints answer, and Ctrl-C stops it."""
    demo = section_commands("### Try it without an amoCRM account")
    assert [".venv/bin/amosync demo"] == demo
    proc = subprocess.Popen(
        ["bash", "-c", demo[0]],
        cwd=clone,
        env=_user_env(AMOSYNC_LANG="ru"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            printed += line
            if line.startswith("Данные: "):
                break
        page = re.search(r"^  страница статуса\s+(\S+)$", printed, re.M)
        deal = re.search(r"^  одна сделка\s+(\S+)$", printed, re.M)
        token = re.search(r"\(токен (\S+);", printed)
        assert page, printed
        assert deal, printed
        assert token, printed
        shown_page = httpx.get(page.group(1), timeout=10)
        shown_deal = httpx.get(deal.group(1), timeout=10)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()

    assert 200 == shown_page.status_code
    assert 200 == shown_deal.status_code, shown_deal.text
    assert shown_deal.json()["name"].startswith("Демо-аренда №")
    assert 0 == proc.returncode, printed + rest
    assert "демонстрация остановлена." in rest
    # names: the fake's token, the `status` command
    assert [] == english_words(printed + rest, token.group(1), "status"), printed + rest
