"""When to try a GitHub call again, and how long to wait first — decided in one place (pure).

The rules, in order:
- A rate limit (403/429 with `Retry-After`, `X-RateLimit-Remaining: 0`, or GitHub's rate-limit
  message) means GitHub did not process the request: reads *and* writes are sent again after the
  wait GitHub asked for (`Retry-After`, else until `X-RateLimit-Reset`, else a minute for a
  secondary limit), but never more than `max_rate_limit_wait` at a time nor more than
  `max_rate_limit_retries` times — beyond that the caller gets a `RateLimitedError` to schedule.
- A server error (5xx) or a broken connection is retried with exponential backoff for reads,
  which are idempotent; for writes the outcome is unknown, so it is *not* re-sent
  (`WriteOutcomeUnknownError`): a comment or a check run must not appear twice.
- Anything else (401, 404, 422…) is permanent: retrying cannot change the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import requests
from github import GithubException

from mergebot.forge.errors import ForgeError, RateLimitedError, WriteOutcomeUnknownError

SECONDARY_RATE_LIMIT_WAIT = 60.0
_RATE_LIMIT_PHRASES = (
    "api rate limit exceeded",
    "secondary rate limit",
    "please retry your request again later",
    "please wait a few minutes before you try again",
)


@dataclass(frozen=True)
class RetryPolicy:
    max_read_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_rate_limit_wait: float = 300.0
    max_rate_limit_retries: int = 3


@dataclass(frozen=True)
class Retry:
    """Send the request again after `delay` seconds; `rate_limited` counts against its budget."""

    delay: float
    rate_limited: bool
    reason: str


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, Mapping):
        return str(data.get("message") or "")
    return str(data or "")


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def rate_limit_wait(exc: GithubException, now: float) -> float | None:
    """Seconds GitHub asks us to wait before sending this request again, or None when the error
    is not a rate limit."""
    if exc.status not in (403, 429):
        return None
    headers = exc.headers
    retry_after = _header(headers, "retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return SECONDARY_RATE_LIMIT_WAIT
    if _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        if reset is not None and reset.isdigit():
            return max(0.0, int(reset) - now) + 1.0
    message = _message(exc).lower()
    if exc.status == 429 or any(phrase in message for phrase in _RATE_LIMIT_PHRASES):
        return SECONDARY_RATE_LIMIT_WAIT
    return None


def describe(exc: BaseException) -> str:
    """A short, credential-free description of a failed call for logs and errors."""
    if isinstance(exc, GithubException):
        text = _message(exc)
        return f"HTTP {exc.status}" + (f": {text}" if text else "")
    return type(exc).__name__


def decide(
    policy: RetryPolicy,
    exc: BaseException,
    *,
    what: str,
    write: bool,
    attempt: int,
    rate_limit_retries: int,
    now: float,
) -> Retry | ForgeError:
    """What to do after attempt number `attempt` (1-based) of `what` failed with `exc`."""
    if isinstance(exc, GithubException):
        wait = rate_limit_wait(exc, now)
        if wait is not None:
            if wait > policy.max_rate_limit_wait or rate_limit_retries >= (
                policy.max_rate_limit_retries
            ):
                return RateLimitedError(
                    f"{what}: GitHub rate limit, retry in {wait:.0f}s",
                    status=exc.status,
                    retry_after=wait,
                )
            return Retry(wait, rate_limited=True, reason=describe(exc))
        server_error = exc.status >= 500
        status: int | None = exc.status
    elif isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        server_error, status = True, None
    else:
        return ForgeError(f"{what}: {describe(exc)}")
    if not server_error:
        detail = _message(exc) if isinstance(exc, GithubException) else ""
        return ForgeError(f"{what}: {describe(exc)}", status=status, detail=detail)
    if write:
        return WriteOutcomeUnknownError(
            f"{what}: {describe(exc)}; not sent again (it may or may not have been applied)",
            status=status,
        )
    if attempt >= policy.max_read_attempts:
        return ForgeError(
            f"{what}: {describe(exc)} after {attempt} attempts", status=status, retryable=True
        )
    delay = min(policy.backoff_max, policy.backoff_base * 2 ** (attempt - 1))
    return Retry(delay, rate_limited=False, reason=describe(exc))
