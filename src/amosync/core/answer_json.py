"""Decoding amoCRM's JSON answers so that one odd value spoils one value, not the answer.

orjson refuses, for the whole body, what amoCRM does send now and then: a lone UTF-16
surrogate escape (`"\\ud83d"`, half an emoji cut off by a field's length limit) or bytes
that are not UTF-8. One such lead failed its whole chunk of 250 on every retry, and the
catch-up page holding it. Only when orjson refuses does the standard library decode the
body instead (a lone surrogate becomes U+FFFD, undecodable bytes too), so a normal answer
costs what it did. U+0000 is dropped in both cases (core/nul.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from amosync.core.nul import JSON_ESCAPED_NUL, without_nul

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads_answer(content: bytes) -> Any:
    """`content` decoded; raises ValueError when it is not JSON at all."""
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = _loads_leniently(content)
    if JSON_ESCAPED_NUL in content:  # rare: walk the answer only then
        value = without_nul(value)
    return value


def _loads_leniently(content: bytes) -> Any:
    try:
        # The standard library keeps a lone surrogate escape as a lone surrogate (and joins a
        # proper pair into one character); `replace` turns bytes that are not UTF-8 into U+FFFD.
        value = json.loads(content.decode("utf-8", "replace"))
    except RecursionError:  # nested deeper than Python's stack: not an amoCRM answer
        raise ValueError("JSON nested too deeply") from None
    return _without_surrogates(value)


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value
