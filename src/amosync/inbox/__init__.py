"""② The durable inbox: the events table, appended by the receiver and drained by workers."""

from amosync.inbox.store import InboxStats, InboxStore
from amosync.inbox.writer import GroupCommitWriter

__all__ = ["GroupCommitWriter", "InboxStats", "InboxStore"]
