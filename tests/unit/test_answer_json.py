"""amoCRM answers are decoded even when one value in them is not valid text."""

from __future__ import annotations

import orjson
import pytest

from amosync.core.answer_json import loads_answer


def test_a_normal_answer_decodes_as_orjson_decodes_it() -> None:
    body = orjson.dumps({"_embedded": {"leads": [{"id": 1, "name": "Аренда 😀", "price": 5}]}})
    assert orjson.loads(body) == loads_answer(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"name": "Kia \\ud83d Rio"}', {"name": "Kia \ufffd Rio"}),  # high half alone
        (b'{"name": "\\udc00end"}', {"name": "\ufffdend"}),  # low half alone
        (b'{"name": "\\ud83d"}', {"name": "\ufffd"}),  # cut at the very end
        (b'{"name": "\\ud83d\\ude00 \\ud83d"}', {"name": "😀 \ufffd"}),  # a pair stays whole
        (b'{"\\ud83d": ["\\ud83d", {"k": "\\udfff"}]}', {"\ufffd": ["\ufffd", {"k": "\ufffd"}]}),
        (b'{"name": "caf\xe9"}', {"name": "caf\ufffd"}),  # Latin-1, not UTF-8
        (b'{"name": "\xed\xa0\xbd"}', {"name": "\ufffd\ufffd\ufffd"}),  # a surrogate as bytes
        (b'{"name": "a\\u0000b \\ud83d"}', {"name": "ab \ufffd"}),  # NUL dropped here too
    ],
)
def test_odd_text_becomes_replacement_characters(raw: bytes, expected: object) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)  # what failed a whole chunk before
    assert expected == loads_answer(raw)


@pytest.mark.parametrize("raw", [b"<html>502</html>", b'{"name": "unterminated', b"[" * 100_000])
def test_what_is_not_json_is_still_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        loads_answer(raw)
