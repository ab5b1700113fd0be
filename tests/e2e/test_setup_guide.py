"""docs/AMOCRM_WEBHOOK_SETUP.md, walked step by step against `amosync dev fake-amocrm`.

Every fenced `sh` block of the guide is matched to a step below (a new block the test does not
know fails it), and its commands run as written in a shell, in a fresh directory with a `.env`
made from `.env.example` the way the guide tells the user, the fake's URL set through
`AMOSYNC_AMOCRM_BASE_URL` (the guide's rehearsal section). What a person does in amoCRM's UI
(create a deal, the webhook switched off, "Allow" on the consent page) goes through the fake's
control API. Outputs the guide shows are compared with what the commands print.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from amosync.cli.auth import consent_url
from amosync.cli.main import app
from amosync.settings import Settings
from tests.e2e.test_cli import AMOSYNC, free_port, wait_http

ROOT = Path(__file__).parent.parent.parent
GUIDE = ROOT / "docs" / "AMOCRM_WEBHOOK_SETUP.md"
GUIDE_EN = ROOT / "docs" / "AMOCRM_WEBHOOK_SETUP.en.md"
BIN = Path(AMOSYNC[0]).parent  # the venv's bin: `amosync` there is the one under test
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.S | re.M)
_ENV_LINE = re.compile(r"^(AMOSYNC_[A-Z0-9_]+)=")
# A walk runs some 30 commands, each a new Python process: about 40 s on an idle host, over
# the per-test guard of 120 s while the suite's other processes share two cores.
WALK_TIMEOUT = 360


def fenced(path: Path) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(path.read_text(encoding="utf-8"))]


def commands(block: str) -> list[str]:
    """The command lines of a block: no comments, no trailing `# …` notes."""
    lines = []
    for line in block.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


class Walk:
    """One user's directory, `.env` and shell."""

    def __init__(self, cwd: Path, fake_url: str) -> None:
        self.cwd = cwd
        self.fake_url = fake_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
        self.env["PATH"] = f"{BIN}{os.pathsep}{self.env.get('PATH', '')}"

    def set(self, name: str, value: str) -> None:
        """Edit `.env` as a user would: replace the variable's line, or add one."""
        path = self.cwd / ".env"
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if not line.startswith(f"{name}=")]
        path.write_text("\n".join([*kept, f"{name}={value}"]) + "\n", encoding="utf-8")

    def sh(self, command: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if expect is not None:
            assert expect == done.returncode, f"{command}\n{done.stdout}\n{done.stderr}"
        return done


# The guide's `sh` blocks in order, by their first command. A block the test does not know
# (or a missing one) fails the test: teach the walk below about it.
KNOWN_BLOCKS = [
    "git clone",  # 1. install
    "AMOSYNC_AMOCRM_CLIENT_ID=",  # 2. option B settings
    "AMOSYNC_AMOCRM_SUBDOMAIN=",  # 3. the smallest .env
    "amosync webhooks register",  # 5.
    "amosync doctor",  # 6.
    "amosync status",  # 7.
    "amosync dev fake-amocrm &",  # 11. rehearsal set-up
    "amosync dev fake-amocrm lead create",  # 11. the UI's actions
    "amosync dev fake-amocrm --port 8082",  # 11. OAuth
]
GUIDE_FAKE = "127.0.0.1:8081"
GUIDE_OAUTH_FAKE = "127.0.0.1:8082"
GUIDE_SERVICE = "127.0.0.1:3000"
GUIDE_CALLBACK = "127.0.0.1:8765"
GUIDE_PUBLIC = "https://sync.example.com"


def sh_blocks(path: Path) -> list[str]:
    return [body for lang, body in fenced(path) if lang == "sh"]


def block(signature: str, path: Path = GUIDE) -> str:
    found = [b for b in sh_blocks(path) if commands(b) and commands(b)[0].startswith(signature)]
    assert 1 == len(found), f"no single sh block starting with {signature!r} in {path.name}"
    return found[0]


def doctor_sample() -> str:
    """The unlabelled block right after the `amosync doctor` block: its promised output."""
    blocks = fenced(GUIDE)
    at = next(i for i, (lang, b) in enumerate(blocks) if lang == "sh" and "amosync doctor" in b)
    lang, sample = blocks[at + 1]
    assert "" == lang
    return sample


MARK_LINE = re.compile(r"^([✓!✗–]) (\w+) ", re.M)


def marks(output: str) -> list[tuple[str, str]]:
    return MARK_LINE.findall(output)


# -- the guide and the product agree on names --------------------------------------------------


@pytest.mark.parametrize("path", [GUIDE, GUIDE_EN], ids=["ru", "en"])
def test_the_guide_blocks_are_the_ones_the_walk_knows(path: Path) -> None:
    firsts = [commands(b)[0] for b in sh_blocks(path)]
    assert len(KNOWN_BLOCKS) == len(firsts), firsts
    for signature, first in zip(KNOWN_BLOCKS, firsts, strict=True):
        assert first.startswith(signature), (signature, first)


def test_both_languages_give_the_same_commands() -> None:
    def norm(path: Path) -> list[list[str]]:
        # Quoted names ("Test deal") and <placeholders> are translated; the rest is the same.
        def one(c: str) -> str:
            return re.sub(r"<[^>]+>", "<…>", re.sub(r'"[^"$]*"', '"…"', c))

        return [[one(c) for c in commands(b)] for b in sh_blocks(path)]

    assert norm(GUIDE) == norm(GUIDE_EN)


@pytest.mark.parametrize("path", [GUIDE, GUIDE_EN], ids=["ru", "en"])
def test_every_setting_the_guide_names_exists(path: Path) -> None:
    known = {f"AMOSYNC_{name.upper()}" for name in Settings.model_fields}
    named = set(re.findall(r"AMOSYNC_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    assert set() == named - known


@pytest.mark.parametrize("path", [GUIDE, GUIDE_EN], ids=["ru", "en"])
def test_every_command_the_guide_names_exists_with_its_options(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    inline = re.findall(r"`(amosync [^`]+)`", text)
    fenced_lines = [c for b in sh_blocks(path) for c in commands(b) if c.startswith("amosync ")]
    runner = CliRunner()
    checked = set()
    for command in [*inline, *fenced_lines]:
        words = command.replace("&", " ").split()[1:]
        route = []
        for word in words:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                break
            route.append(word)
        options = [w.split("=")[0] for w in words if w.startswith("--")]
        if (tuple(route), tuple(options)) in checked:
            continue
        checked.add((tuple(route), tuple(options)))
        shown = runner.invoke(app, [*route, "--help"], terminal_width=200)
        assert 0 == shown.exit_code, f"`{command}`: {shown.output}"
        for option in options:
            assert option in shown.output, (
                f"`{command}`: no {option} in `amosync {' '.join(route)}`"
            )


# -- the walk ----------------------------------------------------------------------------------


class Guide:
    """Substitutes this run's ports and values for the guide's examples."""

    def __init__(self, fake: str, service: str, public: str) -> None:
        self.values = {
            GUIDE_FAKE: fake,
            GUIDE_SERVICE: service,
            GUIDE_PUBLIC: public,
        }

    def __call__(self, text: str) -> str:
        for example, actual in self.values.items():
            text = text.replace(example, actual)
        return text


@contextmanager
def serving(walk: Walk, port: int) -> Iterator[None]:
    """`amosync serve &` in the walk's directory; stopped as Ctrl+C would."""
    log = (walk.cwd / f"serve-{time.monotonic_ns()}.log").open("wb")
    proc = subprocess.Popen(
        ["bash", "-c", "exec amosync serve"],
        cwd=walk.cwd,
        env=walk.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        log.close()


def wait_for(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


def rows(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        try:
            return list(conn.execute(sql, params))
        except sqlite3.OperationalError:
            return []


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[str]:
    """The guide's first rehearsal line, `amosync dev fake-amocrm &`, on a free port."""
    first = commands(block("amosync dev fake-amocrm &"))[0]
    assert "amosync dev fake-amocrm &" == first
    port = free_port()
    log = (tmp_path / "fake.log").open("wb")
    proc = subprocess.Popen(
        [*AMOSYNC, "dev", "fake-amocrm", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_fake/deliveries", proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


@pytest.mark.timeout(WALK_TIMEOUT)
def test_walk_the_guide_with_a_long_lived_token(fake: str, tmp_path: Path) -> None:
    """Sections 1, 3-7, 9 and 11 of the guide, run as written against the fake."""
    # 1. Install: the repository has what the guide runs and copies.
    install = commands(block("git clone"))
    assert "scripts/serve" == install[1]
    assert os.access(ROOT / "scripts" / "serve", os.X_OK)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")  # the repository directory

    service_port = free_port()
    service = f"127.0.0.1:{service_port}"
    guide = Guide(fake, service, f"http://{service}")
    walk = Walk(tmp_path, fake)

    # 11. The rehearsal's set-up instead of sections 2-4; the fake already runs, and the test
    # starts `amosync serve` itself (the block's last line) to stop it later.
    setup = block("amosync dev fake-amocrm &").split("\n", 1)[1]
    setup_lines = setup.strip().splitlines()
    assert "amosync serve &" == setup_lines[-1]
    walk.sh(guide("\n".join(setup_lines[:-1])))
    walk.set("AMOSYNC_PORT", str(service_port))  # the guide's 3000, free on this machine
    dotenv = (tmp_path / ".env").read_text(encoding="utf-8")
    secret = re.findall(r"^AMOSYNC_WEBHOOK_SECRET=([0-9a-f]{32})$", dotenv, re.M)[-1]
    token = re.findall(r"^AMOSYNC_AMOCRM_LONG_LIVED_TOKEN=(\S+)$", dotenv, re.M)[-1]
    assert 3 == token.count(".") + 1  # a JWT

    # 3. Every variable of the smallest .env is set (the rehearsal's way) or left empty as
    # the guide allows for the RentProg field id.
    for line in commands(block("AMOSYNC_AMOCRM_SUBDOMAIN=")):
        name = line.split("=", 1)[0]
        if name == "AMOSYNC_AMOCRM_SUBDOMAIN":
            continue  # the fake is named by AMOSYNC_AMOCRM_BASE_URL instead
        if name not in {"AMOSYNC_RENTPROG_FIELD_ID"}:
            assert re.search(rf"^{name}=\S", dotenv, re.M), name

    with serving(walk, service_port):
        # 4.5: reachable from outside; a GET is 405.
        curl = walk.sh(guide(f"curl -i {GUIDE_PUBLIC}/amocrm/{secret}"))
        assert " 405 " in curl.stdout.splitlines()[0]

        # 5. Register; the output has the shape the guide shows.
        register = block("amosync webhooks register")
        said = walk.sh(commands(register)[0])
        promised = re.search(r"# (✓ subscribed .*)$", register, re.M)
        assert promised is not None
        pattern = re.escape(guide(promised.group(1))).replace("3f9c", re.escape(secret[:4]))
        pattern = pattern.replace("4000001", r"\d+")
        assert re.fullmatch(pattern, said.stdout.strip()), said.stdout
        listed = walk.sh("amosync webhooks list").stdout
        assert "← amosync" in listed
        assert "enabled" in listed

        # 6. Doctor; without the field id it names it (section 3).
        # Before the first webhook only `events` fails (as the text under the sample says).
        first = walk.sh("amosync doctor", expect=1)
        assert "1 of 12 checks failed: events" == first.stdout.strip().splitlines()[-1]
        assert ("✗", "events") in marks(first.stdout)
        assert ("!", "rentprog_field") in marks(first.stdout)
        assert "set AMOSYNC_RENTPROG_FIELD_ID=700001" in first.stdout
    walk.set("AMOSYNC_RENTPROG_FIELD_ID", "700001")

    with serving(walk, service_port):  # the table in section 8: set it, restart the service
        # 7. A test deal, made "in amoCRM" by the rehearsal's command.
        actions = commands(block("amosync dev fake-amocrm lead create"))
        created = walk.sh(actions[0]).stdout
        found = re.fullmatch(r"lead (\d+) created; 1 webhook\(s\) sent", created.strip())
        assert found, created
        lead_id = found.group(1)
        db = tmp_path / "amosync.db"
        wait_for(
            lambda: (
                rows(db, "SELECT rentprog_id FROM amocrm_deals WHERE id = ?", int(lead_id))
                == [("RP-TEST",)]
            ),
            "the test deal in amocrm_deals",
        )
        check = commands(block("amosync status"))
        walk.sh(check[0])
        selected = walk.sh(check[1]).stdout
        assert f"{lead_id}|" in selected
        assert "|RP-TEST|" in selected
        assert [("done",)] == rows(db, "SELECT DISTINCT status FROM amocrm_webhook_events")

        moved = walk.sh(actions[1].replace("<id>", lead_id)).stdout
        assert f"lead {lead_id} moved" in moved
        wait_for(
            lambda: (
                rows(db, "SELECT status_id FROM amocrm_deals WHERE id = ?", int(lead_id))
                == [(142,)]
            ),
            "the deal moved to 142",
        )

        # 6 again, now that a webhook came: every line the guide shows, each ✓.
        doctor = walk.sh("amosync doctor")
        assert marks(doctor_sample()) == marks(doctor.stdout), doctor.stdout
        assert "all checks passed" == doctor.stdout.strip().splitlines()[-1]

        # 9. amoCRM disabled the webhook: doctor and list say so; register enables it again.
        disable = actions[2].replace("<секрет>", secret).replace("<secret>", secret)
        walk.sh(guide(disable))
        broken = walk.sh("amosync doctor", expect=1).stdout
        assert ("✗", "webhook") in marks(broken)
        assert "DISABLED" in walk.sh("amosync webhooks list").stdout
        walk.sh("amosync webhooks register")
        again = walk.sh("amosync doctor").stdout
        assert ("✓", "webhook") in marks(again)
        walk.sh("amosync reconcile --since 2h")

        # 10. A long-lived token near its end: doctor warns AMOSYNC_TOKEN_WARN_DAYS ahead.
        walk.set(
            "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN",
            walk.sh("amosync dev fake-amocrm token --days 3").stdout.strip(),
        )
        expiring = walk.sh("amosync doctor").stdout
        assert ("!", "token_expiry") in marks(expiring), expiring


@pytest.mark.timeout(WALK_TIMEOUT)
def test_walk_the_oauth_rehearsal(tmp_path: Path) -> None:
    """Section 2 option B on the fake: `auth url` → consent → `auth exchange`, then `auth login`."""
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    fake_port, callback_port = free_port(), free_port()
    walk = Walk(tmp_path, f"127.0.0.1:{fake_port}")

    def sub(text: str) -> str:
        text = text.replace(GUIDE_OAUTH_FAKE, f"127.0.0.1:{fake_port}")
        text = text.replace("--port 8082", f"--port {fake_port}")
        return text.replace(GUIDE_CALLBACK, f"127.0.0.1:{callback_port}")

    lines = commands(block("amosync dev fake-amocrm --port 8082"))
    start = lines[0]
    assert start.endswith(" &")
    fake_log = (tmp_path / "fake.log").open("wb")
    fake = subprocess.Popen(
        ["bash", "-c", "exec " + sub(start[:-2])],
        cwd=tmp_path,
        env=walk.env,
        stdout=fake_log,
        stderr=subprocess.STDOUT,
    )
    try:
        fake_url = f"http://127.0.0.1:{fake_port}"
        wait_http(f"{fake_url}/_fake/deliveries", fake)
        text = block("amosync dev fake-amocrm --port 8082")
        setup, tail = text.split("\nEOF\n")
        walk.sh(sub(setup.split("\n", 1)[1] + "\nEOF\n"))
        steps = commands(tail)
        assert ["amosync migrate", "amosync auth login", "amosync auth status"] == steps
        walk.sh(steps[0])

        # 2B, step 3, first way: the link, "Allow", the address from the browser, exchange.
        link = walk.sh("amosync auth url").stdout.strip()
        assert link.startswith(f"{fake_url}/oauth?")
        address = allow(link)
        assert address.startswith(f"http://127.0.0.1:{callback_port}/oauth/callback?code=")
        walk.sh(f"amosync auth exchange '{address}'")
        assert "OAuth" in walk.sh("amosync auth status").stdout

        # The second way, as the rehearsal block runs it: login waits for the redirect.
        login = subprocess.Popen(
            ["bash", "-c", "exec amosync auth login --timeout 30"],
            cwd=tmp_path,
            env=walk.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert login.stdout is not None
        link = login.stdout.readline().strip()
        address = allow(link)
        wait_for(lambda: _get(address), "amosync auth login listening")
        out, err = login.communicate(timeout=30)
        assert 0 == login.returncode, out + err
        status = walk.sh("amosync auth status").stdout
        assert "OAuth" in status
    finally:
        fake.send_signal(signal.SIGTERM)
        fake.wait(timeout=20)
        fake_log.close()


def allow(link: str) -> str:
    """What the admin does on the consent page: open it, click "Allow"; returns the redirect."""
    page = httpx.get(link)
    assert 200 == page.status_code
    assert "Allow" in page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    answer = httpx.post(link.split("?")[0], data={**fields, "answer": "allow"})
    assert 302 == answer.status_code
    return answer.headers["location"]


def _get(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.TransportError:
        return False
    return True


# -- the fake's CLI beyond what the guide runs --------------------------------------------------


def test_fake_cli_edits_deletes_and_reports(fake: str, tmp_path: Path) -> None:
    """`lead update|delete`, `contact create|update|delete`, `webhook deliveries`, bad input."""
    walk = Walk(tmp_path, fake)
    url = f"--url http://{fake}"
    lead = walk.sh(f"amosync dev fake-amocrm lead create {url} --json")
    lead_id = json.loads(lead.stdout)["lead"]["id"]
    updated = walk.sh(f"amosync dev fake-amocrm lead update {lead_id} --name X --price 5 {url}")
    assert f"lead {lead_id} updated; 0 webhook(s) sent" == updated.stdout.strip()
    assert (
        f"lead {lead_id} deleted"
        in walk.sh(f"amosync dev fake-amocrm lead delete {lead_id} {url}").stdout
    )
    gone = walk.sh(f"amosync dev fake-amocrm lead delete {lead_id} {url}", expect=1)
    assert "the fake refused" in gone.stderr
    contact = walk.sh(f"amosync dev fake-amocrm contact create --name Ann --phone +7900 {url}")
    contact_id = re.findall(r"contact (\d+) created", contact.stdout)[0]
    walk.sh(f"amosync dev fake-amocrm contact update {contact_id} --name Anna {url}")
    walk.sh(f"amosync dev fake-amocrm contact delete {contact_id} {url}")
    counters = json.loads(walk.sh(f"amosync dev fake-amocrm webhook deliveries {url}").stdout)
    assert {"pending": 0, "dropped": 0, "destinations": {}} == counters
    nobody = walk.sh(
        f"amosync dev fake-amocrm lead create --url http://127.0.0.1:{free_port()}", expect=1
    )
    assert "cannot reach the fake amoCRM" in nobody.stderr
    missing = walk.sh(f"amosync dev fake-amocrm webhook disable https://nowhere/x {url}", expect=1)
    assert "no subscription" in missing.stderr


def test_consent_link_goes_to_a_fake_on_this_machine() -> None:
    """With amoCRM at a loopback address (the fake), the consent page is the fake's own."""
    settings = Settings(_env_file=None, amocrm_base_url="http://127.0.0.1:8081")
    link = consent_url(settings, "abc", "s1")
    assert "http://127.0.0.1:8081/oauth?client_id=abc&state=s1&mode=post_message" == link
