"""Errors a forge adapter raises, classified once so callers need not know HTTP.

The integrator and the services only ever see these: whether trying later may help, and whether a
write may have happened even though it failed. Messages never contain credentials.
"""

from __future__ import annotations


class ForgeError(Exception):
    """A forge call failed. `retryable` says whether the same call later may succeed; `detail`
    is the forge's own message, for callers that tell one refusal from another by it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        detail: str = "",
    ):
        self.status = status
        self.retryable = retryable
        self.detail = detail
        super().__init__(message)


class RateLimitedError(ForgeError):
    """The forge asked us to wait longer than we are willing to block; try after `retry_after`."""

    def __init__(self, message: str, *, status: int | None, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, retryable=True)


class WriteOutcomeUnknownError(ForgeError):
    """A write failed in a way that does not tell whether the forge applied it (a 5xx, a dropped
    connection). It is never re-sent blindly: the caller re-reads the state and decides."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, retryable=True)
