"""The log formatters' fast paths write exactly what the plain formulas would: the same
timestamp text, and every `extra=` field in the order given, whatever the record's shape."""

from __future__ import annotations

import io
import logging
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from amosync.logs import ConsoleFormatter, JsonFormatter, _LineHandler, _utc_iso_millis

STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
SKIPPED = {"message", "asctime", "color_message"}


def iso_millis(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


def reference_json(record: logging.LogRecord) -> str:
    """The JSON line by the plain formula: fixed fields, then each non-standard attribute."""
    data: dict[str, Any] = {
        "ts": iso_millis(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    data.update(
        (k, v) for k, v in record.__dict__.items() if k not in STANDARD and k not in SKIPPED
    )
    if record.exc_info:
        data["exc"] = logging.Formatter().formatException(record.exc_info)
    return orjson.dumps(data, default=str).decode()


def test_timestamps_match_datetime_for_every_kind_of_fraction() -> None:
    """Random instants, consecutive and backwards seconds (the one-second cache), and fractions
    on the edges: just under a millisecond, and so close to the next second that datetime's
    microsecond rounding carries into it."""
    rng = random.Random(5)
    now = time.time()
    instants = [now + i / 7 for i in range(-50, 50)]
    instants += [rng.uniform(0, 4e9) for _ in range(20_000)]
    for second in (0, 1, 1_700_000_000, 1_764_028_799, 4_102_444_799):
        for fraction in (0.0, 0.0005, 0.0004999, 0.000999, 0.001, 0.9994999, 0.9995, 0.999999):
            instants.append(second + fraction)
        instants += [second + 0.9999995, second + 0.99999949, second + 0.9999999]
        instants += [second - 1e-7, second + 1e-7, float(second)]
    instants += [-1.5, -0.0004]  # before 1970: not a real record, still the same text
    mismatches = [(t, _utc_iso_millis(t), iso_millis(t)) for t in instants if t >= -2]
    assert [] == [m for m in mismatches if m[1] != m[2]]


class Collect(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own at INFO, kept out of the root's handlers."""
    logger = logging.getLogger("amosync.test_logs_format")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def test_json_lines_equal_the_plain_formula_across_record_shapes(logger: logging.Logger) -> None:
    """Shapes repeat and differ: the same keys in another order, a subset, none, uvicorn's
    colour copy, a value orjson cannot encode, an exception, and attributes another handler's
    formatter adds after ours ran once on the record."""
    handler = Collect(JsonFormatter())
    logger.addHandler(handler)
    shapes: list[dict[str, Any]] = [
        {"event": "webhook_stored", "items": 1, "kinds": "leads:update", "ids": "1", "ms": 1.5},
        {"ms": 2.0, "ids": "2", "kinds": "leads:add", "items": 3, "event": "webhook_stored"},
        {"event": "webhook_stored", "items": 1, "kinds": "leads:update", "ids": "3", "ms": 0.1},
        {"event": "worker_batch"},
        {},
        {"color_message": "\x1b[32mhi\x1b[0m", "event": "uvicorn"},
        {"event": "odd", "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "what": {1, 2}},
        {"event": "unicode", "deal": "Сделка «тест»", "none": None, "flag": True},
    ]
    for extra in shapes * 3:
        logger.info("line %s", "x", extra=extra)
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"event": "failed"})
    logger.warning("second pass", extra={"event": "again"})
    record = handler.records[-1]
    logging.Formatter("%(asctime)s %(message)s").format(record)  # adds message and asctime
    handler.lines.append(handler.format(record))
    handler.records.append(record)

    assert len(handler.lines) == len(handler.records) == len(shapes) * 3 + 3
    assert [reference_json(r) for r in handler.records] == handler.lines
    first = orjson.loads(handler.lines[0])
    assert ["ts", "level", "logger", "msg", "event", "items", "kinds", "ids", "ms"] == list(first)
    assert ["ms", "ids", "kinds", "items", "event"] == list(orjson.loads(handler.lines[1]))[4:]
    assert "color_message" not in handler.lines[5]
    assert "ValueError: boom" in orjson.loads(handler.lines[-3])["exc"]
    assert {"message", "asctime"}.isdisjoint(orjson.loads(handler.lines[-1]))


def test_console_line_lists_extras_in_order_without_event(logger: logging.Logger) -> None:
    handler = Collect(ConsoleFormatter())
    logger.addHandler(handler)
    logger.info("webhook_stored", extra={"event": "webhook_stored", "items": 2, "ids": "5,6"})
    logger.info("plain")

    stamp = datetime.fromtimestamp(handler.records[0].created).strftime("%H:%M:%S")  # noqa: DTZ006 - as the formatter
    assert f"{stamp} INFO    webhook_stored items=2 ids=5,6" == handler.lines[0]
    assert handler.lines[1].endswith(" INFO    plain")


def test_configured_json_line_holds_the_same_fields_in_a_fresh_process() -> None:
    """configure_logging stops collecting caller, thread and process for every record (they
    are printed nowhere); a line still carries exactly the fixed fields and the extras."""
    script = (
        "import logging, sys\n"
        "from amosync.logs import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "logging.getLogger('amosync.webhook').info('webhook_stored', extra={'event': "
        "'webhook_stored', 'items': 1, 'kinds': 'leads:update', 'ids': '123', "
        "'request_id': None, 'ms': 1.23})\n"
        "print(logging._srcfile, logging.logThreads, logging.logProcesses, "
        "logging.logMultiprocessing)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    line, flags = done.stdout.splitlines()
    data = orjson.loads(line)
    assert "None False False False" == flags
    assert data.pop("ts") <= iso_millis(time.time())
    assert {
        "level": "info",
        "logger": "amosync.webhook",
        "msg": "webhook_stored",
        "event": "webhook_stored",
        "items": 1,
        "kinds": "leads:update",
        "ids": "123",
        "request_id": None,
        "ms": 1.23,
    } == data
    assert "" == done.stderr


def test_handler_writes_one_flushed_line_per_record(logger: logging.Logger) -> None:
    """Each record reaches the stream as one write followed by a flush: nothing waits in a
    buffer that a crash would lose."""

    class Recording(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def write(self, s: str) -> int:
            self.calls.append("write")
            return super().write(s)

        def flush(self) -> None:
            self.calls.append("flush")
            super().flush()

    stream = Recording()
    handler = _LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.info("one", extra={"event": "one"})
    logger.info("two", extra={"event": "two"})

    assert ["write", "flush", "write", "flush"] == stream.calls
    assert ["one", "two"] == [orjson.loads(x)["msg"] for x in stream.getvalue().splitlines()]
