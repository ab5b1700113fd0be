"""A first run that cannot go wrong, in process: the webhook URL hint, web processes leaving a
trace, copy-db refusing a target amosync still runs on, OAuth refusals named by their cause."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from amosync.amocrm.token_endpoint import TokenEndpoint
from amosync.db import migrate
from amosync.db.copy import CopyRefused, copy_database
from amosync.db.database import Database
from amosync.db.liveness import WEB_KEY_PREFIX
from amosync.db.tables import sync_state
from amosync.errors import ReauthRequired
from amosync.settings import Settings
from amosync.testing import FakeAmoState, create_fake_amocrm
from amosync.testing.fake_oauth import FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REDIRECT_URI
from amosync.web.presence import beat_until_cancelled
from amosync.worker.heartbeat import STOPPED, WorkerState, beat
from tests.integration.test_web import FORM, running

SECRET = "s3cret-path"  # make_settings' webhook secret


async def test_plain_amocrm_with_a_secret_says_the_url_needs_it(
    make_settings: Callable[..., Settings],
) -> None:
    """POST /amocrm while a secret is set: 404 saying the URL must end with the secret; a
    wrong secret: 403. Neither answer contains the secret."""
    async with running(make_settings()) as client:
        plain = await client.post("/amocrm", content=b"leads[update][0][id]=5", headers=FORM)
        wrong = await client.post("/amocrm/s3cret", content=b"leads[update][0][id]=5", headers=FORM)

    assert (404, 403) == (plain.status_code, wrong.status_code)
    assert "/amocrm/<secret>" in plain.json()["error"]
    assert "AMOSYNC_WEBHOOK_SECRET" in plain.json()["error"]
    assert [] == [r.text for r in (plain, wrong) if SECRET in r.text]


async def _live_worker(database: Database, *, state: str = "running") -> WorkerState:
    worker = WorkerState()
    worker.state = state
    await beat(database, worker)
    return worker


async def test_copy_db_refuses_a_target_with_a_live_worker(
    db_url: str, database: Database, sqlite_template: Path, tmp_path: Path
) -> None:
    """A worker that beat a moment ago on the target: refused, with or without --force, the
    worker named; --even-if-running copies; a cleanly stopped worker does not count."""
    from pathlib import Path

    source = Path(str(tmp_path)) / "source.db"
    shutil.copy(str(sqlite_template), source)
    source_url = f"sqlite:///{source}"
    worker = await _live_worker(database)

    for force in (False, True):
        with pytest.raises(CopyRefused) as refused:
            await asyncio.to_thread(copy_database, source_url, db_url, force=force)
        assert f"worker {worker.id}" in str(refused.value)
        assert "--even-if-running" in str(refused.value)

    report = await asyncio.to_thread(
        copy_database, source_url, db_url, force=True, even_if_running=True
    )
    await _live_worker(database, state=STOPPED)
    again = await asyncio.to_thread(copy_database, source_url, db_url, force=True)
    assert report.rows == again.rows == 0


async def test_web_process_leaves_a_trace_copy_db_sees(
    make_settings: Callable[..., Settings], database: Database, db_url: str, tmp_path: Path
) -> None:
    """`serve --no-worker` beats in amosync_state while it runs (copy-db refuses the target,
    naming the web process) and removes its row when it stops."""
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    migrate.upgrade(source_url)
    async with running(make_settings(), worker=False):
        for _ in range(100):
            if await _web_rows(database):
                break
            await asyncio.sleep(0.02)
        with pytest.raises(CopyRefused) as refused:
            await asyncio.to_thread(copy_database, source_url, db_url, force=True)
    assert "web " in str(refused.value)
    assert [] == await _web_rows(database)


async def test_presence_row_is_written_and_removed(database: Database) -> None:
    task = asyncio.create_task(beat_until_cancelled(database, interval=0.05))
    for _ in range(100):
        if await _web_rows(database):
            break
        await asyncio.sleep(0.02)
    rows = await _web_rows(database)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 == len(rows)
    assert datetime.now(UTC) - rows[0][1] < timedelta(seconds=30)
    assert [] == await _web_rows(database)


async def _web_rows(database: Database) -> list[tuple[str, datetime]]:
    async with database.read() as conn:
        result = await conn.execute(
            select(sync_state.c.key, sync_state.c.updated_at).where(
                sync_state.c.key.startswith(WEB_KEY_PREFIX)
            )
        )
        return [(str(r[0]), r[1]) for r in result.all()]


def _endpoint(
    fake: FakeAmoState,
    *,
    secret: str = FAKE_CLIENT_SECRET,
    redirect: str = FAKE_REDIRECT_URI,
    client_id: str = FAKE_CLIENT_ID,
) -> TokenEndpoint:
    return TokenEndpoint(
        "https://example.amocrm.ru",
        client_id,
        secret,
        redirect,
        transport=httpx.ASGITransport(app=create_fake_amocrm(fake)),
    )


@pytest.mark.parametrize(
    ("case", "expected", "not_expected"),
    [
        ("wrong_secret", "AMOSYNC_AMOCRM_CLIENT_SECRET", "20 minutes"),
        ("wrong_client_id", "AMOSYNC_AMOCRM_CLIENT_ID", "20 minutes"),
        ("wrong_redirect", "AMOSYNC_AMOCRM_REDIRECT_URI", "20 minutes"),
        ("used_code", "20 minutes", "CLIENT_SECRET"),
        ("unknown_code", "20 minutes", "CLIENT_SECRET"),
    ],
)
async def test_code_refusals_name_their_cause(case: str, expected: str, not_expected: str) -> None:
    """Each kind of refusal of the token endpoint gets the fix for that kind."""
    fake = FakeAmoState(rate_limit_rps=None)
    code = fake.oauth.issue_code()
    kwargs: dict[str, str] = {
        "wrong_secret": {"secret": "not-the-secret"},
        "wrong_client_id": {"client_id": "00000000-0000-4000-8000-000000000000"},
        "wrong_redirect": {"redirect": "https://sync.example.com/other"},
    }.get(case, {})
    if case == "used_code":
        await _endpoint(fake).exchange_code(code)
    if case == "unknown_code":
        code = "def50200garbage"

    with pytest.raises(ReauthRequired) as refused:
        await _endpoint(fake, **kwargs).exchange_code(code)

    assert expected in str(refused.value)
    assert not_expected not in str(refused.value)


async def test_refresh_with_a_wrong_secret_names_the_secret() -> None:
    """A refresh refused for the client credentials says so, not "re-authorise"."""
    fake = FakeAmoState(rate_limit_rps=None)
    _, refresh = fake.oauth.issue_pair()

    with pytest.raises(ReauthRequired) as refused:
        await _endpoint(fake, secret="rotated-secret").refresh(refresh)

    assert "AMOSYNC_AMOCRM_CLIENT_SECRET" in str(refused.value)
