"""The status page in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Data comes through the real pipeline: webhooks into the app on a port, its worker fetching
from the fake amoCRM. A screenshot of each run lands in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from amosync.settings import Settings
from amosync.testing import FakeAmoState, Fault, create_fake_amocrm
from amosync.web.app import create_app
from tests.english_words import english_words
from tests.live_app import FORM, demo_fake, serve_app, webhook_body

# One worker for the module under `pytest -n` (scripts/test): each would start its own browser.
pytestmark = pytest.mark.xdist_group("browser")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
ADMIN = "browser-admin-token-5f1c2a9e"
SECRET_PATH = "/amocrm/s3cret-path-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser (scripts/test does)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


class LiveSync:
    """The app on a port with 5 deals and one failed event, plus the fake it fetches from."""

    def __init__(self, base_url: str, fake: FakeAmoState) -> None:
        self.base_url, self.fake = base_url, fake
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"})

    def deliver(self, lead_ids: list[int]) -> None:
        response = self.http.post(SECRET_PATH, content=webhook_body(lead_ids), headers=FORM)
        assert 200 == response.status_code
        deadline = time.monotonic() + 20
        while self.events("pending"):
            assert time.monotonic() < deadline, "events still pending"
            time.sleep(0.05)

    def events(self, status: str) -> list[dict[str, object]]:
        events: list[dict[str, object]] = self.http.get(
            "/api/events", params={"status": status}
        ).json()["events"]
        return events


@pytest.fixture
def live(make_settings: Callable[..., Settings]) -> Iterator[LiveSync]:
    fake = demo_fake(5)
    settings = make_settings(admin_token=ADMIN, max_attempts=1)
    app = create_app(settings, amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)))
    with serve_app(app) as base_url:
        sync = LiveSync(base_url, fake)
        leads = sorted(fake.table("leads"))
        sync.deliver(leads)
        fake.script_faults(Fault(status=400), path_prefix="/api/v4/leads")
        sync.deliver([leads[2]])  # amoCRM refuses this fetch: the event ends `failed`
        yield sync
        sync.http.close()


def open_logged_in(browser: Browser, base_url: str, path: str) -> tuple[Page, list[str]]:
    """A fresh browser context that logs in through the form, then opens `path`."""
    page = browser.new_context(locale="en-US").new_page()  # pages ask in English
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base_url}{path}")
    expect(page.locator("form#login")).to_be_visible()
    page.fill("input[name=token]", ADMIN)
    page.click("#login button[type=submit]")
    expect(page.locator("#live")).to_be_visible()
    page.goto(f"{base_url}{path}")
    return page, errors


def test_page_renders_real_data_and_retry_works(
    browser: Browser, live: LiveSync, db_url: str
) -> None:
    """Counters, checks and chart show the stored data; Retry requeues the failed event and
    the worker then processes it."""
    page, errors = open_logged_in(browser, live.base_url, "/?events=failed")

    expect(page.locator("[data-counter=deals]")).to_have_text("5")
    expect(page.locator("[data-counter=deals_with_rentprog_id]")).to_have_text("5")
    expect(page.locator("[data-counter=contacts]")).to_have_text("5")
    expect(page.locator("tr[data-check=database] td.ok")).to_have_count(1)
    expect(page.locator("svg.chart polyline.received")).to_have_count(1)
    failed_row = page.locator("tr.event.status-failed")
    expect(failed_row).to_have_count(1)
    expect(failed_row).to_contain_text("amoCRM answered 400")
    page.screenshot(path=str(ARTIFACTS / f"status-page-{_db(db_url)}.png"), full_page=True)
    (failed,) = live.events("failed")

    failed_row.locator("button").click()

    expect(page.locator("#flash")).to_have_text(f"Event {failed['id']} is queued again.")
    deadline = time.monotonic() + 15
    while failed["id"] not in [e["id"] for e in live.events("done")]:
        assert time.monotonic() < deadline, "the retried event was not processed"
        time.sleep(0.05)
    assert [] == live.events("failed")
    assert [] == errors  # no script error, no CSP violation


def test_page_refreshes_itself_without_reloading(browser: Browser, live: LiveSync) -> None:
    """A webhook arriving while the page is open shows up in it; the page never reloads."""
    # The fixture's webhooks and the fetches they queued (linked contacts and companies).
    done = len(live.events("done"))
    page, errors = open_logged_in(browser, live.base_url, "/?refresh=1")
    expect(page.locator("[data-counter=events_by_status]")).to_contain_text(f"done: {done},")
    page.evaluate("window.notReloaded = true")

    live.deliver([sorted(live.fake.table("leads"))[0]])

    expect(page.locator("[data-counter=events_by_status]")).to_contain_text(
        f"done: {done + 1},", timeout=10_000
    )
    assert True is page.evaluate("window.notReloaded === true")
    assert [] == errors


def test_search_finds_a_deal_by_rentprog_id(browser: Browser, live: LiveSync) -> None:
    """Typing a RentProg ID into the search box shows that deal with its contact, in Russian."""
    page, errors = open_logged_in(browser, live.base_url, "/?lang=ru")

    page.fill("#search-form input[name=q]", "RP-1004")
    page.click("#search-form button[type=submit]")

    result = page.locator("#search-results tr.deal")
    expect(result).to_have_count(1)
    expect(result.locator("td.rentprog")).to_have_text("RP-1004")
    expect(result).to_contain_text("Аренда #4")
    expect(result).to_contain_text("Клиент 4")
    expect(page.locator("h1")).to_have_text("amosync: состояние")
    page.screenshot(path=str(ARTIFACTS / "status-page-search-ru.png"), full_page=True)
    page.fill("#search-form input[name=q]", "RP-0000")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#search-empty")).to_contain_text("RP-0000")
    assert [] == errors


def test_russian_page_has_no_english_words_beyond_names_and_ids(
    browser: Browser, live: LiveSync
) -> None:
    """What the reader sees of the Russian page (checks, counters, the failed event and its
    error, the chart) is Russian but for names and ids (tests/english_words.py, issue #22)."""
    page, errors = open_logged_in(browser, live.base_url, "/?lang=ru&q=RP-1004")
    expect(page.locator("#events-table tr.event").first).to_be_visible()
    text = page.evaluate("document.body.innerText")
    assert [] == english_words(text), text
    assert [] == errors


def _db(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


@pytest.fixture
def paused(make_settings: Callable[..., Settings]) -> Iterator[str]:
    """The app with amoCRM refusing our token: a webhook arrives and the worker pauses."""
    fake = demo_fake(2)
    fake.revoke_tokens()
    settings = make_settings(admin_token=ADMIN)
    app = create_app(settings, amocrm_transport=httpx.ASGITransport(app=create_fake_amocrm(fake)))
    with serve_app(app) as base_url, httpx.Client(base_url=base_url) as http:
        lead = sorted(fake.table("leads"))[0]
        stored = http.post(SECRET_PATH, content=webhook_body([lead]), headers=FORM)
        assert 200 == stored.status_code
        deadline = time.monotonic() + 20
        while http.get("/health").json()["checks"]["worker"]["state"] != "fail":
            assert time.monotonic() < deadline, "the worker did not pause"
            time.sleep(0.1)
        yield base_url


@pytest.mark.parametrize(
    ("lang", "title", "check", "fix"),
    [
        ("en", "Sync is paused.", "amocrm_pause", "re-authorise (`amosync auth login`"),
        (
            "ru",
            "Синхронизация приостановлена.",
            "пауза amoCRM",
            "авторизуйтесь заново (`amosync auth login`",
        ),
    ],
)
def test_paused_sync_shows_the_red_banner(
    browser: Browser, paused: str, lang: str, title: str, check: str, fix: str
) -> None:
    """amoCRM refused the token: the page opens with a red banner saying sync is paused, why
    (the failing check) and what to do, in the page's language."""
    page, errors = open_logged_in(browser, paused, f"/?lang={lang}")

    banner = page.locator("#sync-banner")
    expect(banner).to_be_visible()
    expect(banner.locator("strong")).to_have_text(title)
    expect(banner).to_have_attribute("data-check", "amocrm_pause")
    expect(banner.locator(".why")).to_contain_text(check)  # its name in the page's language
    expect(banner.locator(".fix")).to_contain_text(fix)
    color = banner.evaluate("e => getComputedStyle(e).borderTopColor")
    assert "rgb(207, 34, 46)" == color  # --bad: red
    expect(page.locator("tr[data-check=token] td.bad")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / f"status-page-paused-{lang}.png"), full_page=True)
    if lang == "ru":  # the paused page's details (refusals, pauses, hints) too (issue #22)
        text = page.evaluate("document.title + '\\n' + document.body.innerText")
        assert [] == english_words(text), text
    assert [] == errors
