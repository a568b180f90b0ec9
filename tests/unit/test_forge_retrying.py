"""The one place that decides whether a GitHub call is tried again (pure)."""

from __future__ import annotations

import pytest
import requests
from github import GithubException

from mergebot.forge.errors import ForgeError, RateLimitedError, WriteOutcomeUnknownError
from mergebot.forge.github import RerunRefusal, rerun_refusal
from mergebot.forge.retrying import Retry, RetryPolicy, decide

NOW = 1_800_000_000.0
POLICY = RetryPolicy()


def _decide(exc: BaseException, *, write: bool = False, attempt: int = 1, rl: int = 0) -> object:
    return decide(POLICY, exc, what="op", write=write, attempt=attempt,
                  rate_limit_retries=rl, now=NOW)  # fmt: skip


def _gh(status: int, message: str = "", **headers: str) -> GithubException:
    return GithubException(status, {"message": message}, {k.lower(): v for k, v in headers.items()})


@pytest.mark.parametrize("write", [False, True])
def test_rate_limits_are_waited_out_for_reads_and_writes(write: bool) -> None:
    decision = _decide(_gh(403, "secondary rate limit", **{"Retry-After": "7"}), write=write)
    assert decision == Retry(7.0, rate_limited=True, reason="HTTP 403: secondary rate limit")


def test_primary_rate_limit_waits_for_the_reset_plus_a_second() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 10)}
    exc = _gh(403, "API rate limit exceeded", **headers)
    decision = _decide(exc)
    assert isinstance(decision, Retry)
    assert decision.delay == 11.0


def test_rate_limit_retries_are_bounded() -> None:
    exc = _gh(429, "slow down", **{"Retry-After": "1"})
    decision = _decide(exc, rl=POLICY.max_rate_limit_retries)
    assert isinstance(decision, RateLimitedError)
    assert decision.retry_after == 1.0


def test_a_plain_403_is_permanent() -> None:
    decision = _decide(_gh(403, "Resource not accessible by integration"))
    assert isinstance(decision, ForgeError)
    assert not isinstance(decision, RateLimitedError)
    assert decision.status == 403
    assert not decision.retryable


def test_server_errors_retry_reads_with_backoff_until_the_budget_ends() -> None:
    delays = [_decide(_gh(502), attempt=n) for n in (1, 2, 3)]
    assert [d.delay for d in delays if isinstance(d, Retry)] == [0.5, 1.0, 2.0]
    last = _decide(_gh(502), attempt=POLICY.max_read_attempts)
    assert isinstance(last, ForgeError)
    assert last.retryable


def test_server_errors_and_dropped_connections_on_writes_are_not_repeated() -> None:
    assert isinstance(_decide(_gh(500), write=True), WriteOutcomeUnknownError)
    dropped = requests.exceptions.ConnectionError("reset")
    assert isinstance(_decide(dropped, write=True), WriteOutcomeUnknownError)
    assert isinstance(_decide(dropped), Retry)


def test_validation_errors_are_permanent() -> None:
    decision = _decide(_gh(422, "Update is not a fast forward"), write=True)
    assert isinstance(decision, ForgeError)
    assert decision.status == 422
    assert "Update is not a fast forward" in str(decision)


def test_a_permanent_error_carries_github_s_own_message() -> None:
    decision = _decide(_gh(403, "Resource not accessible by integration"), write=True)
    assert isinstance(decision, ForgeError)
    assert (decision.status, decision.detail) == (403, "Resource not accessible by integration")


@pytest.mark.parametrize(
    ("status", "message", "refusal"),
    [
        # GitHub's answers while the job's (or the) workflow run has not finished.
        (403, "The workflow run containing this job is already running", RerunRefusal.NOT_YET),
        (403, "This workflow is already running", RerunRefusal.NOT_YET),
        # Refusals that waiting does not change.
        (403, "Resource not accessible by integration", RerunRefusal.REFUSED),
        (403, "Unable to retry this workflow run because it was created over a month ago",
         RerunRefusal.REFUSED),
        (403, "This check run is not rerequestable", RerunRefusal.REFUSED),
        (404, "Not Found", RerunRefusal.REFUSED),
        (422, "The workflow run containing this job is already running", RerunRefusal.REFUSED),
        # Not a refusal: an error for the caller.
        (401, "Bad credentials", None),
        (None, "", None),
    ],
)  # fmt: skip
def test_a_re_run_refusal_is_not_yet_only_while_the_workflow_run_runs(
    status: int | None, message: str, refusal: RerunRefusal | None
) -> None:
    assert rerun_refusal(status, message) is refusal
