"""Scenario 5, bad input: fuzzed and hostile bodies on both webhook endpoints get a fast 4xx
(or, when valid, a 200 that stored exactly the items the body holds), and a rejected body
writes no row at all. Seeded with every real fixture in tests/data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from amosync.core.webhook import WebhookParseError, parse_webhook
from amosync.settings import Settings
from amosync.web.app import create_app
from tests.reliability.harness import DATA, query

FORM = "application/x-www-form-urlencoded"
WEBHOOK = "/amocrm/s3cret-path-0123456789"
N8N = "/amocrm/process-webhook"
FORM_SEEDS = sorted(p.read_bytes() for p in DATA.glob("webhook_*.form"))
JSON_SEEDS = sorted(p.read_bytes() for p in DATA.glob("*.json"))
# A rejection must be quick: amoCRM waits 2 s for any answer.
FAST_SECONDS = 1.0


class Client:
    """The real app (no worker, lifespan running) reached over ASGI. `post` is synchronous
    so hypothesis can drive it from a thread while the app runs on the test's event loop."""

    def __init__(self, http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.http = http
        self._loop = loop

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        call = self.http.post(path, content=body, headers=headers)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result(timeout=30)


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[Client]:
    app = create_app(make_settings(amocrm_subdomain=None), run_worker=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http,
    ):
        yield Client(http, asyncio.get_running_loop())


def row_counts(db_url: str) -> tuple[int, int]:
    events = query(db_url, "SELECT count(*) FROM amocrm_webhook_events")[0][0]
    deals = query(db_url, "SELECT count(*) FROM amocrm_deals")[0][0]
    return int(events), int(deals)


def items_in(body: bytes) -> int | None:
    try:
        return len(parse_webhook(body).items)
    except WebhookParseError:
        return None


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Real bodies cut, spliced with junk, or with bytes flipped."""

    def mutate(seed: bytes, cut: int, junk: bytes, flips: list[int]) -> bytes:
        body = bytearray(seed[: max(1, cut % (len(seed) + 1))] + junk)
        for flip in flips:
            body[flip % len(body)] ^= 0xFF
        return bytes(body)

    return st.builds(
        mutate,
        st.sampled_from(seeds),
        st.integers(0, 10_000),
        st.binary(max_size=40),
        st.lists(st.integers(0, 10_000), max_size=3),
    )


form_like = st.text(
    alphabet=st.sampled_from(list("ab[]=&%+0123456789xyzé\u0000\ud7ff")), max_size=300
).map(lambda s: s.encode("utf-8", "surrogatepass"))
broken_percent = st.lists(
    st.sampled_from([b"%", b"%z", b"%zz", b"%4", b"%C3", b"%C3%28", b"%FF", b"%00", b"a=", b"&"]),
    max_size=40,
).map(b"".join)
form_bodies = st.one_of(
    st.binary(max_size=3000),
    mutated(FORM_SEEDS),
    form_like,
    broken_percent,
    st.just(b"\xff\xfe\xfd"),
    st.sampled_from(FORM_SEEDS),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "leads",
                    "name",
                    "updated_at",
                    "_embedded",
                    "custom_fields_values",
                    "add",
                    "status",
                    "0",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)
json_bodies = st.one_of(
    json_values.map(orjson.dumps),
    mutated(JSON_SEEDS),
    st.binary(max_size=500),
    st.sampled_from(JSON_SEEDS),
)
content_types = st.sampled_from(
    [FORM, f"{FORM}; charset=UTF-8", "application/json", "text/plain", "multipart/form-data", ""]
)


def fuzz_settings() -> hsettings:
    return hsettings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )


@pytest.mark.slow
async def test_fuzzed_webhook_bodies_get_4xx_or_store_exactly_their_items(
    client: Client, db_url: str
) -> None:
    """Random, mutated and real form bodies: 200 stores one row per item, 4xx stores nothing,
    never 5xx, always within a second."""

    tried: list[int] = []

    @fuzz_settings()
    @given(body=form_bodies, content_type=content_types)
    @example(body=FORM_SEEDS[0], content_type=FORM)
    def check(body: bytes, content_type: str) -> None:
        tried.append(len(body))
        before = row_counts(db_url)
        started = time.monotonic()
        answer = client.post(WEBHOOK, body, {"Content-Type": content_type})
        elapsed = time.monotonic() - started
        after = row_counts(db_url)
        assert elapsed < FAST_SECONDS
        expected_items = items_in(body) if content_type.startswith(FORM) else None
        if answer.status_code == 200:
            assert expected_items is not None
            assert (before[0] + expected_items, before[1]) == after
        else:
            assert answer.status_code in {400, 413, 415}, (answer.status_code, answer.text)
            assert before == after

    await asyncio.to_thread(check)
    assert len(tried) >= 100  # the fuzzer really ran


@pytest.mark.slow
async def test_fuzzed_n8n_bodies_get_4xx_or_200_never_5xx(client: Client, db_url: str) -> None:
    """Random JSON, mutated fixtures and bytes on the n8n endpoint: never 5xx, and a refused
    body writes no event and no deal."""

    tried: list[int] = []

    @fuzz_settings()
    @given(body=json_bodies, content_type=content_types)
    def check(body: bytes, content_type: str) -> None:
        tried.append(len(body))
        before = row_counts(db_url)
        headers = {"Content-Type": content_type, "X-Amosync-Secret": "s3cret-path-0123456789"}
        answer = client.post(N8N, body, headers)
        if answer.status_code != 200:
            assert answer.status_code in {400, 413, 415}, (answer.status_code, answer.text)
            assert before == row_counts(db_url)

    await asyncio.to_thread(check)
    assert len(tried) >= 100  # the fuzzer really ran


def nested_key(levels: int) -> bytes:
    return b"leads[add][0][id]=1&a" + b"[b]" * levels + b"=1"


HOSTILE: list[tuple[str, bytes, str, set[int]]] = [
    ("10,000-level nested key", nested_key(10_000), FORM, {400}),
    ("10^5 keys", b"&".join(b"k%d=1" % n for n in range(100_000)), FORM, {400}),
    (
        "10^5 items",
        b"&".join(b"leads[add][%d][id]=1" % n for n in range(100_000))[:1_000_000],
        FORM,
        {400},
    ),
    (
        "giant value over the body limit",
        b"leads[add][0][id]=1&leads[add][0][name]=" + b"A" * 2_000_000,
        FORM,
        {413},
    ),
    ("giant key", b"a" * 900_000 + b"=1", FORM, {400}),
    (
        "JSON where form is expected",
        orjson.dumps({"leads": {"add": [{"id": 1}]}}),
        "application/json",
        {415},
    ),
    ("form sent as text/plain", b"leads[add][0][id]=1", "text/plain", {415}),
    ("no content type", b"leads[add][0][id]=1", "", {415}),
    ("invalid UTF-8 in a key", b"leads[add][0][\xff\xfe]=1", FORM, {400}),
    ("broken percent-encoding only", b"%%%zz%C3%28=%", FORM, {400}),
    ("NUL bytes", b"\x00" * 1000, FORM, {400}),
]


@pytest.mark.parametrize(
    ("name", "body", "content_type", "statuses"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_hostile_bodies_are_refused_fast_and_store_nothing(
    client: Client,
    db_url: str,
    name: str,
    body: bytes,
    content_type: str,
    statuses: set[int],
) -> None:
    """Each hostile body gets its 4xx within a second and leaves the tables as they were."""
    started = time.monotonic()
    answer = await client.http.post(WEBHOOK, content=body, headers={"Content-Type": content_type})
    elapsed = time.monotonic() - started

    assert answer.status_code in statuses, answer.text
    assert elapsed < FAST_SECONDS
    assert (0, 0) == row_counts(db_url)
    assert "s3cret-path-0123456789" not in answer.text


async def test_a_50_mib_body_is_refused_before_it_is_read(client: Client, db_url: str) -> None:
    """50 MiB with a Content-Length is refused 413 at once; sent chunked, after 1 MiB."""
    big = b"a=" + b"x" * (50 * 1024 * 1024)
    started = time.monotonic()
    declared = await client.http.post(WEBHOOK, content=big, headers={"Content-Type": FORM})

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    chunked = await client.http.post(WEBHOOK, content=chunks(), headers={"Content-Type": FORM})
    elapsed = time.monotonic() - started

    assert (413, 413) == (declared.status_code, chunked.status_code)
    assert elapsed < 5.0
    assert (0, 0) == row_counts(db_url)


async def test_every_fixture_is_accepted_by_its_endpoint(client: Client, db_url: str) -> None:
    """The seeds themselves: every real webhook body stores exactly its items."""
    stored = 0
    for body in FORM_SEEDS:
        answer = await client.http.post(WEBHOOK, content=body, headers={"Content-Type": FORM})
        assert 200 == answer.status_code, answer.text
        stored += items_in(body) or 0
    assert (stored, 0) == row_counts(db_url)


N8N_HOSTILE = [
    (
        "lead id beyond 64 bits",
        b'{"id": 9223372036854775808, "pipeline_id": 1, "updated_at": 1}',
        400,
        (0, 0),
    ),
    (
        "lead price beyond 64 bits is dropped",
        b'{"id": 5, "pipeline_id": 1, "price": 9223372036854775808, "updated_at": 1}',
        200,
        (1, 1),
    ),
    (
        "webhook item id beyond 64 bits",
        b'{"leads": {"add": [{"id": 9223372036854775808}]}}',
        400,
        (0, 0),
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "rows"), N8N_HOSTILE, ids=[h[0] for h in N8N_HOSTILE]
)
async def test_n8n_numbers_beyond_bigint_are_refused_not_crashing(
    client: Client, db_url: str, name: str, body: bytes, status: int, rows: tuple[int, int]
) -> None:
    """Integers that do not fit a BIGINT column get 400 (or are dropped), never a 500/503."""
    headers = {"Content-Type": "application/json", "X-Amosync-Secret": "s3cret-path-0123456789"}
    answer = await client.http.post(N8N, content=body, headers=headers)

    assert status == answer.status_code, answer.text
    assert rows == row_counts(db_url)
