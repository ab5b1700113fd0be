"""Whole SQLite write transactions on the process's writer thread (`Database.write_sync`).

The same SQLAlchemy statements as through the async engine, but on a synchronous twin
engine, the whole transaction in one call on the writer thread of the turns (`WriteTurns.run`),
so one transaction is one hand-off from the event loop, not one per statement. Why:
docs/ARCHITECTURE.md, "Storage". The twin is set up as the service engine (PRAGMAs, BEGIN
IMMEDIATE) and leaves checkpoints to the service engine's checkpointer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from amosync.db.engine import create_twin_engine
from amosync.db.wal_checkpoint import WalCheckpointer

T = TypeVar("T")


class ThreadTransactions:
    def __init__(self, engine: AsyncEngine, checkpointer: WalCheckpointer | None) -> None:
        self._engine = create_twin_engine(engine, checkpointer)

    @property
    def engine(self) -> Engine:
        """The synchronous twin engine (the SQLite file guard listens on it too)."""
        return self._engine

    def transaction(self, work: Callable[[Connection], T]) -> T:
        """`work(conn)` inside BEGIN IMMEDIATE … COMMIT (ROLLBACK if it raises), on the
        calling thread: hand this to `WriteTurns.run`."""
        with self._engine.begin() as conn:
            return work(conn)

    def close(self) -> None:
        self._engine.dispose()
