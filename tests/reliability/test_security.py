"""Security checks of issue #6: secrets are compared in constant time and never echoed, no
command prints a stored token, and `.env.example` ships without secret values."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from amosync.amocrm.token_store import TokenGrant, TokenStore
from amosync.db.database import Database
from amosync.settings import Settings
from amosync.web.app import create_app
from amosync.webhook import guard
from tests.reliability.harness import AMOSYNC, DATA, FORM, Fleet

ROOT = Path(__file__).parent.parent.parent
SECRETS = {
    "AMOSYNC_WEBHOOK_SECRET": "whsec-3f9c1b7a5d",
    "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN": "llt-9a8b7c6d5e4f",
    "AMOSYNC_AMOCRM_CLIENT_SECRET": "cls-1122334455",
    "AMOSYNC_ADMIN_TOKEN": "adm-66778899001122",
}
STORED_ACCESS = "acc-stored-0a1b2c3d4e"
STORED_REFRESH = "ref-stored-5f6a7b8c9d"


def test_secret_check_uses_a_constant_time_comparison() -> None:
    """check_secret compares with hmac.compare_digest, never `==` (timing would leak it)."""
    source = Path(guard.__file__).read_text()
    body = source[source.index("def check_secret") : source.index("def check_content_type")]
    assert "hmac.compare_digest(" in body
    assert "== expected" not in body


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/amocrm/wrong-secret", FORM),
        ("/amocrm/", FORM),
        ("/amocrm/process-webhook", {"Content-Type": "application/json"}),
        ("/amocrm/process-webhook?secret=wrong", {"Content-Type": "application/json"}),
        (
            "/amocrm/process-webhook",
            {"Content-Type": "application/json", "X-Amosync-Secret": "whsec-3f9c1b7a"},
        ),
    ],
)
async def test_wrong_or_missing_secret_is_refused_without_echoing_it(
    make_settings: Callable[..., Settings],
    database: Database,
    caplog: pytest.LogCaptureFixture,
    path: str,
    headers: dict[str, str],
) -> None:
    """403/404 for a wrong, missing or prefix-only secret; neither the body nor any log line
    contains the real secret."""
    secret = SECRETS["AMOSYNC_WEBHOOK_SECRET"]
    app = create_app(make_settings(webhook_secret=secret, amocrm_subdomain=None), run_worker=False)
    caplog.set_level(logging.DEBUG)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http,
    ):
        body = (DATA / "webhook_leads_add_2016_zapier.form").read_bytes()
        answer = await http.post(path, content=body, headers=headers)
        accepted = await http.post(f"/amocrm/{secret}", content=body, headers=FORM)

    assert answer.status_code in {403, 404}
    assert 200 == accepted.status_code
    assert secret not in answer.text
    # The test's own HTTP client (httpx, httpcore) logs its URLs; the service must not.
    service_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert [] != service_records  # the webhook lines are there…
    assert [] == [r.name for r in service_records if secret in str(vars(r))]  # …without it


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_command_prints_a_secret_or_a_stored_token(db_url: str, tmp_path: Path) -> None:
    """status, doctor, auth status, events list/show and webhooks list, with every secret
    set and OAuth tokens stored: none of their values appears in any output."""
    fleet = Fleet(
        db_url,
        "http://127.0.0.1:9",
        tmp_path,
        {
            **SECRETS,
            "AMOSYNC_AMOCRM_CLIENT_ID": "00000000-0000-4000-8000-00000000c11d",
            "AMOSYNC_AMOCRM_REDIRECT_URI": "https://sync.example.com/oauth/callback",
        },
    )
    asyncio.run(store_tokens(db_url, "http://127.0.0.1:9"))
    body = (DATA / "webhook_leads_add_2016_zapier.form").read_bytes()
    web = fleet.web()
    try:
        posted = httpx.post(
            f"{web.url}/amocrm/{SECRETS['AMOSYNC_WEBHOOK_SECRET']}", content=body, headers=FORM
        )
    finally:
        fleet.stop()
    outputs = [web.output()]
    for args in (
        ["status"],
        ["status", "--json"],
        ["doctor"],
        ["auth", "status"],
        ["events", "list"],
        ["events", "show", "1"],
        ["webhooks", "list"],
    ):
        done = subprocess.run(
            [*AMOSYNC, *args], env=fleet.env, capture_output=True, timeout=60, check=False
        )
        outputs.append(f"{args}: {done.returncode}\n{done.stdout.decode()}{done.stderr.decode()}")

    assert 200 == posted.status_code
    text = "\n".join(outputs)
    for value in [*SECRETS.values(), STORED_ACCESS, STORED_REFRESH]:
        assert value not in text, value


async def store_tokens(db_url: str, account: str) -> None:

    database = Database.open(db_url)
    try:
        grant = TokenGrant(STORED_ACCESS, STORED_REFRESH, datetime.now(UTC) + timedelta(hours=1))
        await TokenStore(database, account).save(grant)
    finally:
        await database.dispose()


def test_env_example_holds_no_secret_values() -> None:
    """Every token, secret or password line in .env.example is empty or a placeholder."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    offending = []
    for line in lines:
        name, sep, value = line.lstrip("# ").partition("=")
        if not sep or not name.startswith("AMOSYNC_"):
            continue
        if any(word in name for word in ("TOKEN", "SECRET", "PASSWORD")) and value.strip():
            offending.append(name)
        if "://" in value and "@" in value and "CHANGE-ME" not in value:
            offending.append(name)  # a database URL with a real password
    assert [] == offending
