"""Outgoing HTTP for the sinks: one client with a timeout, and the one place that classifies a
failure as retryable or permanent and reads how long the other side asked us to wait.

Error messages are built here from the status and the API's own error text, never from the URL:
Telegram, Discord and Slack webhook URLs carry their secret in the path, and aiohttp's exception
texts include the URL. Any secret that still reaches a message is replaced by `***`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

# Slack Web API `error` codes that mean "try again later" (everything else is permanent).
_SLACK_RETRYABLE = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
     "request_timeout"}
)  # fmt: skip
_RETRYABLE_STATUS = frozenset({408, 425, 429})


class DeliveryError(Exception):
    """A send that failed; `retryable` says whether the same request may succeed later."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class MessageGoneError(DeliveryError):
    """The message to edit no longer exists (deleted, too old): post a new one instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(float(value), 0.0)
    if isinstance(value, str):
        try:
            return max(float(value.strip()), 0.0)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return None


def retry_after(headers: Mapping[str, str], body: object) -> float | None:
    """How long the server asked us to wait: the Retry-After header (seconds or an HTTP date),
    Discord's `retry_after` or Telegram's `parameters.retry_after` in the JSON body."""
    header = headers.get("Retry-After")
    if header is not None and (seconds := _seconds(header)) is not None:
        return seconds
    if isinstance(body, dict):
        if (seconds := _seconds(body.get("retry_after"))) is not None:
            return seconds
        params = body.get("parameters")
        if isinstance(params, dict):
            return _seconds(params.get("retry_after"))
    return None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    text: str
    body: object = field(default=None)  # parsed JSON when the response was JSON

    def error_text(self, limit: int = 200) -> str:
        """The API's own words about a failure, short."""
        body = self.body
        if isinstance(body, dict):
            for key in ("description", "error", "message"):
                value = body.get(key)
                if isinstance(value, str) and value:
                    return value[:limit]
        return " ".join(self.text.split())[:limit]


def classify(response: HttpResponse, *, api_error: str | None = None) -> DeliveryError | None:
    """None when the response is a success; otherwise the error, retryable or permanent.

    HTTP 429, 408, 425 and 5xx are retryable (honouring Retry-After); other 4xx are permanent (a
    wrong token, a deleted webhook, a bad request: the same request will fail again). Slack's Web
    API answers 200 with `{"ok": false, "error": …}`: pass that code as `api_error`.
    """
    status = response.status
    wait = retry_after(response.headers, response.body)
    if 200 <= status < 300 and api_error is None:
        return None
    detail = api_error or response.error_text()
    message = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if api_error is not None and 200 <= status < 300:
        return DeliveryError(
            f"API error {api_error}", retryable=api_error in _SLACK_RETRYABLE, retry_after=wait
        )
    if status in _RETRYABLE_STATUS or status >= 500:
        return DeliveryError(message, retryable=True, retry_after=wait)
    return DeliveryError(message, retryable=False)


class HttpClient:
    """aiohttp with a total timeout per request; transport failures become DeliveryError."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 10.0) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> HttpResponse:
        try:
            async with self.session.request(
                method,
                url,
                json=json_body,
                data=data,
                headers=dict(headers or {}),
                params=dict(params or {}),
                timeout=self.timeout,
                allow_redirects=False,
            ) as resp:
                text = await resp.text(errors="replace")
                body: object = None
                if "json" in resp.headers.get("Content-Type", ""):
                    try:
                        body = json.loads(text)
                    except ValueError:
                        body = None
                return HttpResponse(resp.status, dict(resp.headers), text, body)
        except TimeoutError:
            raise DeliveryError("timed out", retryable=True) from None
        except aiohttp.InvalidURL:
            raise DeliveryError("the configured URL is not valid", retryable=False) from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            # The exception's text may contain the URL (and so a token): name the type only.
            reason = redact(type(exc).__name__, secrets)
            raise DeliveryError(f"connection failed ({reason})", retryable=True) from None
