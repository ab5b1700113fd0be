"""Logging: readable lines on a terminal, JSON lines otherwise (for log systems).

Every record carries a stable `event` name next to the message plus its ids and timings in
`extra`; the JSON formatter writes all of them as fields.

One line is written per webhook, so formatting is on the hot path: the helpers below avoid
per-record work that gives the same answer every time (see `_extra_keys`, `_utc_iso_millis`).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

# Attributes every LogRecord has; anything else came from `extra=` and is ours to print.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's duplicate of the message with terminal colours
}

# A record's attribute names in order (its "shape") -> the `extra=` names among them. Records
# from one call site share a shape, so the scan against _STANDARD runs once per call site.
_extra_keys_by_shape: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_SHAPES = 1024  # call sites are few; the bound only guards against generated extra names


def _extra_keys(record: logging.LogRecord) -> tuple[str, ...]:
    shape = tuple(record.__dict__)
    keys = _extra_keys_by_shape.get(shape)
    if keys is None:
        if len(_extra_keys_by_shape) >= _MAX_SHAPES:
            _extra_keys_by_shape.clear()
        keys = tuple(k for k in shape if k not in _STANDARD)
        _extra_keys_by_shape[shape] = keys
    return keys


# The last second formatted, as (unix second, "YYYY-MM-DDTHH:MM:SS"): lines come in bursts.
_last_second: tuple[int, str] = (-1, "")
# Every millisecond's tail, so a line costs a lookup instead of a number format.
_MILLIS_TAILS = tuple(f".{ms:03d}+00:00" for ms in range(1000))


def _utc_iso_millis(created: float) -> str:
    """Same text as `datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`,
    reusing the date and time of day while the second is the same."""
    global _last_second  # a one-entry cache; replacing a tuple is atomic
    if created < 0:  # never for a real record; kept exact rather than special-cased below
        return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    second = int(created)
    # datetime rounds to the microsecond half-to-even, as round() does; `created - second` is
    # exact in floating point, so both see the same fraction. Rounding up can reach the next
    # second. isoformat then truncates microseconds to milliseconds.
    micros = round((created - second) * 1e6)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]
        _last_second = (second, prefix)
    return prefix + _MILLIS_TAILS[micros // 1000]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _utc_iso_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = record.__dict__
        for key in _extra_keys(record):
            data[key] = fields[key]
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")  # noqa: DTZ006 - local time for humans
        values = record.__dict__
        fields = " ".join(f"{k}={values[k]}" for k in _extra_keys(record) if k != "event")
        line = f"{ts} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _LineHandler(logging.StreamHandler[TextIO]):
    """StreamHandler that writes and flushes each line in one go: `handle()` already holds the
    lock, so the stock `emit()` taking it again in `flush()` is pure overhead. Still one
    flushed write per line, so a crash loses nothing already logged."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self.stream
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:  # as the stock emit(): never swallow a recursion error
            raise
        except Exception:
            self.handleError(record)


def _skip_unprinted_record_fields() -> None:
    """Neither formatter prints the caller, thread or process, and uvicorn runs without a
    logging config of its own (`log_config=None`), so nothing reads them: stop collecting them
    for every record (the logging HOWTO, "Optimization"). The caller's frame walk alone is the
    biggest single cost of a log line."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False


def writes_json(fmt: str) -> bool:
    """JSON lines (for a log system), or readable lines because a person watches."""
    return fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Route every logger (ours, uvicorn's) to stdout in one format."""
    use_json = writes_json(fmt)
    handler = _LineHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _skip_unprinted_record_fields()
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # We write one line per webhook and per API call ourselves; these would double them.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
