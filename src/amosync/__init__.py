"""amosync: a live copy of an amoCRM account's deals and contacts, fed by webhooks."""

__version__ = "0.1.0"
