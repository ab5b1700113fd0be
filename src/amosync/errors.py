"""Every error amosync raises on purpose, grouped by what the caller does next.

    AmosyncError
    ├── ConfigError            the CLI exits 2 naming the setting
    ├── StorageUnavailable     the database cannot be reached / written: webhook answers 503
    ├── WebhookRejected        HTTP 4xx with a short reason; nothing is stored
    └── AmoCRMError            a call to amoCRM did not give us data
        ├── RetryLater         transient (429, 5xx, timeout): events go back to pending
        │   └── RateLimited    a 429 pause is in force and the caller will not wait it out
        ├── ReauthRequired     401: the token is refused; API work stops, events stay pending
        ├── IPBlocked          403: amoCRM blocked us; stop calling for a cool-down
        ├── RequestRejected    another 4xx: the request itself is wrong; events fail
        └── AnswerTooLarge     the answer is over AMOSYNC_API_MAX_ANSWER_BYTES: the worker
                               asks for fewer entities; one entity alone over it fails

The docstring of each class is its default message.
"""

from __future__ import annotations


class AmosyncError(Exception):
    """amosync error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(AmosyncError):
    """The configuration is incomplete or invalid."""


class StorageUnavailable(AmosyncError):
    """The database is unavailable."""


class WebhookRejected(AmosyncError):
    """The webhook request was rejected."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class AmoCRMError(AmosyncError):
    """amoCRM did not return the data."""


class RetryLater(AmoCRMError):
    """amoCRM is temporarily unavailable; try again later."""

    def __init__(self, message: str | None = None, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class RateLimited(RetryLater):
    """Calls to amoCRM are paused after a 429; try again later."""


class ReauthRequired(AmoCRMError):
    """amoCRM refused the token (401): re-authorise the integration."""


class IPBlocked(AmoCRMError):
    """amoCRM answered 403: this IP is blocked for a while."""

    def __init__(self, message: str | None = None, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay  # seconds left, when known (a block another process recorded)


class RequestRejected(AmoCRMError):
    """amoCRM rejected the request (4xx)."""

    def __init__(self, message: str | None = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class AnswerTooLarge(AmoCRMError):
    """amoCRM's answer is larger than AMOSYNC_API_MAX_ANSWER_BYTES."""

    def __init__(self, message: str | None = None, *, limit: int = 0, head: bytes = b"") -> None:
        super().__init__(message)
        self.limit = limit
        # The answer's first bytes (amocrm/client.HEAD_BYTES): where a list answer names the
        # one entity that made it too large (catchup/oversize.py).
        self.head = head
