"""Talking to the bench fake amoCRM's `/_bench/*` routes (see bench/fake_amocrm.py)."""

from __future__ import annotations

from typing import Any

import orjson

from bench.loadgen import HttpPool


class FakeControl:
    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        raw = orjson.dumps(body) if body is not None else b""
        status, payload = await self._pool.request(method, path, raw, "application/json")
        if status != 200:
            raise RuntimeError(f"fake amoCRM {path}: HTTP {status}")
        return orjson.loads(payload)

    async def leads(self) -> dict[int, tuple[int, int]]:
        """id → (price, updated_at) of every lead, as amoCRM holds them now."""
        body = await self._call("GET", "/_bench/leads")
        return {int(k): (v[0], v[1]) for k, v in body.items()}

    async def touch(self, ids: list[int]) -> dict[int, int]:
        """Change the leads (price + 1); returns id → new updated_at."""
        body = await self._call("POST", "/_bench/touch", {"ids": ids})
        return {int(k): v[1] for k, v in body.items()}

    async def reset(self) -> None:
        await self._call("POST", "/_bench/reset")

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self._call("GET", "/_bench/stats")
        return stats
