"""The CLI in Russian (AMOSYNC_LANG or the locale) and times in AMOSYNC_TIMEZONE (issue #22).

Real commands in a subprocess against the fake amoCRM, on SQLite and PostgreSQL: what a person
reads has no English words beyond names and ids; `--json` stays English and UTC.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from amosync.testing import FakeAmoState, run_fake_in_thread
from tests.e2e.test_cli import AMOSYNC, env_for
from tests.e2e.test_cli_events import add_failed_event
from tests.english_words import english_words


@pytest.fixture
def fake_url() -> Iterator[str]:
    with run_fake_in_thread(FakeAmoState()) as url:
        yield url


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AMOSYNC, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def env(db_url: str, fake_url: str, tmp_path: Path) -> dict[str, str]:
    env = env_for(db_url, fake_url)
    for name in ("LC_ALL", "LC_MESSAGES"):
        env.pop(name, None)
    env["LANG"] = "C.UTF-8"
    assert 0 == run(["migrate"], env, tmp_path).returncode
    return env


@pytest.mark.parametrize("how", [{"AMOSYNC_LANG": "ru"}, {"LANG": "ru_RU.UTF-8"}])
def test_doctor_and_status_speak_russian(
    env: dict[str, str], tmp_path: Path, how: dict[str, str]
) -> None:
    russian = {**env, **how}
    doctor = run(["doctor"], russian, tmp_path)
    status = run(["status"], russian, tmp_path)

    assert "не пройдено проверок" in doctor.stdout, doctor.stdout
    assert "Сделок сохранено" in status.stdout, status.stdout
    assert [] == english_words(doctor.stdout, "testaccount"), doctor.stdout  # the fake's
    assert [] == english_words(status.stdout), status.stdout


def test_english_stays_the_default_and_json_stays_english(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert "Deals stored" in run(["status"], env, tmp_path).stdout
    doctor = run(["doctor", "--json"], {**env, "AMOSYNC_LANG": "ru"}, tmp_path)
    report = json.loads(doctor.stdout)
    assert "database" in {c["name"] for c in report["checks"]}
    assert [] == [c for c in report["checks"] if not english_words(c["detail"] or "x")]


def test_an_unknown_timezone_exits_2_naming_the_variable(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = run(["status"], {**env, "AMOSYNC_TIMEZONE": "Mars/Base"}, tmp_path)
    assert 2 == done.returncode
    assert "AMOSYNC_TIMEZONE" in done.stderr
    assert "Mars/Base" in done.stderr


def test_an_error_is_in_russian_too(env: dict[str, str], tmp_path: Path) -> None:
    done = run(["status"], {**env, "AMOSYNC_LANG": "ru", "AMOSYNC_TIMEZONE": "Mars/Base"}, tmp_path)
    assert "неизвестный часовой пояс" in done.stderr


def test_events_speak_russian_with_local_times(
    env: dict[str, str], db_url: str, tmp_path: Path
) -> None:
    event_id = add_failed_event(db_url, 4242)
    russian = {**env, "AMOSYNC_LANG": "ru", "AMOSYNC_TIMEZONE": "Europe/Moscow"}
    listed = run(["events", "list"], russian, tmp_path)
    shown = run(["events", "show", str(event_id)], russian, tmp_path)
    retried = run(["events", "retry", "--id", str(event_id), "--id", "999999"], russian, tmp_path)
    table = listed.stdout + shown.stdout.split("Данные:")[0]

    assert "ПОЛУЧЕНО (MSK)" in listed.stdout, listed.stdout
    assert "MSK (UTC+03:00)" in shown.stdout, shown.stdout
    assert "ошибка" in listed.stdout
    assert [] == english_words(table), table
    assert "Снова в очереди событий: 1" in retried.stdout
    assert "Не в статусе «ошибка»" in retried.stderr
    json_list = json.loads(run(["events", "list", "--json"], russian, tmp_path).stdout)
    assert json_list[0]["status"] in ("pending", "processing", "done", "failed")
    assert json_list[0]["received_at"].endswith("+00:00")


def test_webhooks_and_verify_speak_russian(env: dict[str, str], tmp_path: Path) -> None:
    russian = {**env, "AMOSYNC_LANG": "ru"}
    registered = run(["webhooks", "register"], russian, tmp_path)  # no AMOSYNC_PUBLIC_URL
    listed = run(["webhooks", "list"], russian, tmp_path)
    verified = run(["verify"], russian, tmp_path)
    http = run(["webhooks", "register", "--url", "http://example.com/amocrm/x"], russian, tmp_path)

    assert 2 == registered.returncode
    assert "задайте AMOSYNC_PUBLIC_URL" in registered.stderr, registered.stderr
    assert "в этом аккаунте нет подписок на вебхуки" in listed.stdout, listed.stdout
    assert "Сверка с amoCRM" in verified.stdout, verified.stdout
    assert "только на адреса HTTPS" in http.stderr, http.stderr
    for done in (registered, listed, verified, http):
        assert [] == english_words(done.stdout + done.stderr), done


def test_reconcile_and_backfill_speak_russian(env: dict[str, str], tmp_path: Path) -> None:
    russian = {**env, "AMOSYNC_LANG": "ru"}
    reconciled = run(["reconcile"], russian, tmp_path)
    backfilled = run(["backfill", "--no-wait"], russian, tmp_path)
    wrong = run(["reconcile", "--since", "soon"], russian, tmp_path)

    assert "Догоняющая синхронизация от отметки прошлого запуска" in reconciled.stdout, reconciled
    assert "Первичная загрузка завершена." in backfilled.stdout, backfilled
    assert 2 == wrong.returncode
    assert "неверная длительность 'soon'" in wrong.stderr, wrong.stderr
    for done in (reconciled, backfilled, wrong):
        assert [] == english_words(done.stdout + done.stderr), done


def test_auth_speaks_russian(env: dict[str, str], tmp_path: Path) -> None:
    russian = {**env, "AMOSYNC_LANG": "ru"}
    shown = run(["auth", "status"], russian, tmp_path)
    url = run(["auth", "url"], russian, tmp_path)  # no AMOSYNC_AMOCRM_CLIENT_ID
    exchange = run(["auth", "exchange", "x"], russian, tmp_path)

    assert "Используется" in shown.stdout, shown
    assert "задайте AMOSYNC_AMOCRM_CLIENT_ID" in url.stderr, url
    assert "для OAuth нужны" in exchange.stderr, exchange
    for done in (shown, url, exchange):
        assert [] == english_words(done.stdout + done.stderr), done


def test_a_bad_database_url_is_said_in_russian(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMOSYNC_")}
    russian = {**env, "AMOSYNC_LANG": "ru", "AMOSYNC_DATABASE_URL": "mysql://db/amosync"}
    done = run(["status"], russian, tmp_path)

    assert 2 == done.returncode
    assert "база данных 'mysql' не поддерживается" in done.stderr, done.stderr
    assert [] == english_words(done.stderr), done.stderr
