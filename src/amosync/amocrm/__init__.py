"""④ amoCRM API v4: the client, its rate limiter and where tokens come from."""

from amosync.amocrm.auth import LongLivedToken, TokenProvider
from amosync.amocrm.calls import CallRecorder
from amosync.amocrm.client import AmoClient
from amosync.amocrm.ratelimit import RateLimiter, SlidingWindowLimiter

__all__ = [
    "AmoClient",
    "CallRecorder",
    "LongLivedToken",
    "RateLimiter",
    "SlidingWindowLimiter",
    "TokenProvider",
]
