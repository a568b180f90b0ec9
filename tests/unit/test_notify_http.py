"""Failure classification, Retry-After reading and backoff: decided in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from mergebot.notify.delivery import DeliveryPolicy, backoff
from mergebot.notify.http import HttpResponse, classify, redact, retry_after


def _resp(status: int, body: object = None, **headers: str) -> HttpResponse:
    return HttpResponse(status, headers, "" if body is None else str(body), body)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (429, True), (408, True), (400, False), (401, False),
     (403, False), (404, False), (410, False)],
)  # fmt: skip
def test_status_codes_are_classified(status: int, retryable: bool) -> None:
    error = classify(_resp(status))
    assert error is not None
    assert error.retryable is retryable


def test_success_is_not_an_error() -> None:
    assert classify(_resp(200)) is None
    assert classify(_resp(204)) is None


def test_slack_api_errors_inside_200_are_classified() -> None:
    limited = classify(_resp(200, {"ok": False}), api_error="ratelimited")
    assert limited is not None
    assert limited.retryable
    bad_auth = classify(_resp(200, {"ok": False}), api_error="invalid_auth")
    assert bad_auth is not None
    assert not bad_auth.retryable


def test_retry_after_from_header_seconds_date_and_bodies() -> None:
    assert retry_after({"Retry-After": "3"}, None) == 3.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after({"Retry-After": later}, None) or 0) <= 31
    assert retry_after({}, {"retry_after": 1.5, "global": False}) == 1.5  # Discord
    assert retry_after({}, {"ok": False, "parameters": {"retry_after": 7}}) == 7.0  # Telegram
    assert retry_after({"Retry-After": "soon"}, None) is None
    error = classify(_resp(429, {"ok": False, "parameters": {"retry_after": 2}}))
    assert error is not None
    assert error.retry_after == 2.0


def test_backoff_grows_is_jittered_capped_and_obeys_retry_after() -> None:
    policy = DeliveryPolicy(backoff_base=1.0, backoff_max=8.0, max_retry_after=60.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        waits = [backoff(attempt, policy, None) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1
    assert backoff(1, policy, 5.0) == 5.0
    assert backoff(1, policy, 3600.0) == 60.0


def test_redact_replaces_secrets() -> None:
    assert redact("url https://x/botSECRET123/send", ["SECRET123"]) == "url https://x/bot***/send"
