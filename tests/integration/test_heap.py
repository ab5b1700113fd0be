"""`serve` and `worker` exempt their start-up objects from garbage collection (amosync/heap.py)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator

import pytest

from amosync.heap import freeze_startup_objects
from amosync.settings import Settings
from amosync.web.app import create_app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the test process its collectable heap back afterwards."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_keeps_no_garbage(unfrozen: None) -> None:
    """Unreachable cycles alive before the freeze are collected, not frozen for good."""

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    survivor = Node()
    del a, b
    frozen = freeze_startup_objects()
    assert frozen == gc.get_freeze_count() > 0
    assert not any(type(o) is Node and o is not survivor for o in gc.get_objects(generation=2))
    gc.unfreeze()
    assert any(o is survivor for o in gc.get_objects())


async def test_serve_app_freezes_after_start_up(
    make_settings: Callable[..., Settings], unfrozen: None, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(), run_worker=False, freeze_heap=True)
    with caplog.at_level(logging.INFO, logger="amosync.web.app"):
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000  # the libraries' objects, at least
    started = [r for r in caplog.records if getattr(r, "event", None) == "service_started"]
    assert started[0].frozen_objects > 10_000  # type: ignore[attr-defined]


async def test_apps_built_for_tests_do_not_freeze(
    make_settings: Callable[..., Settings], unfrozen: None
) -> None:
    app = create_app(make_settings(), run_worker=False)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
