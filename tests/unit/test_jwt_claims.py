"""Reading `exp` and `api_domain` from amoCRM JWTs without verifying them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from amosync.amocrm.jwt_claims import JwtClaims, read_claims, token_expires_at


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def jwt(claims: object) -> str:
    return f"{_segment({'typ': 'JWT', 'alg': 'RS256'})}.{_segment(claims)}.c2lnbmF0dXJl"


def test_reads_exp_and_api_domain() -> None:
    """`exp` becomes an aware UTC datetime; `api_domain` is returned as is."""
    token = jwt({"exp": 1798761600, "api_domain": "api-b.amocrm.ru", "aud": "x"})

    assert JwtClaims(datetime(2027, 1, 1, tzinfo=UTC), "api-b.amocrm.ru") == read_claims(token)


def test_long_lived_token_without_api_domain() -> None:
    """A long-lived token has `exp` but no `api_domain`: the domain is None."""
    assert JwtClaims(datetime(2027, 1, 1, tzinfo=UTC), None) == read_claims(
        jwt({"exp": 1798761600})
    )


def test_fractional_exp_is_accepted() -> None:
    """NumericDate may be fractional."""
    assert datetime(2027, 1, 1, 0, 0, 0, 500000, tzinfo=UTC) == token_expires_at(
        jwt({"exp": 1798761600.5})
    )


def test_padding_variants_decode() -> None:
    """Payloads of every length decode although JWTs drop base64 padding."""
    expiries = [token_expires_at(jwt({"exp": 1798761600, "x": "a" * n})) for n in range(4)]

    assert [datetime(2027, 1, 1, tzinfo=UTC)] * 4 == expiries


def test_not_a_jwt() -> None:
    """Opaque tokens, broken base64, non-JSON and non-object payloads give None."""
    samples = ["test-token", "a.b", "a..c", "a.!!!!.c", f"a.{_segment([1, 2])}.c", "a.bm90anNvbg.c"]

    assert [None] * len(samples) == [read_claims(s) for s in samples]


def test_missing_or_invalid_exp() -> None:
    """A JWT without a numeric `exp` (or with `true`, or out of range) has no expiry."""
    payloads = [{}, {"exp": "1798761600"}, {"exp": True}, {"exp": 10**20}]

    assert [None] * 4 == [token_expires_at(jwt(p)) for p in payloads]
