"""The decision over forge check results, and the environment check commands get (pure)."""

from __future__ import annotations

from mergebot.checks import (
    ChecksStatus,
    Reported,
    RerunDecision,
    RerunStep,
    check_env,
    decide_rerun,
    diagnose_missing,
    evaluate,
    mask,
    tail,
)
from mergebot.forge.base import CheckResult, CheckState, RerunAnswer

OK = CheckState.SUCCESS
RUNNING = CheckState.PENDING
FAIL = CheckState.FAILURE


def _eval(results: list[CheckResult], elapsed: float, required: tuple[str, ...] = ("ci", "lint")):
    return evaluate(required, results, elapsed, timeout=100, discovery_timeout=30)


def test_all_green_passes_and_one_red_fails_at_once() -> None:
    assert _eval([CheckResult("ci", OK), CheckResult("lint", OK)], 1).status is ChecksStatus.PASSED
    red = _eval([CheckResult("ci", FAIL, "https://ci/1", "3 tests failed")], 1)
    assert red.status is ChecksStatus.FAILED
    assert red.reports[0].url == "https://ci/1"
    assert red.reports[0].output_tail == "3 tests failed"


def test_waiting_until_the_nearest_deadline() -> None:
    verdict = _eval([CheckResult("ci", RUNNING)], 10)
    assert verdict.status is None
    assert verdict.missing == ["lint"]
    assert verdict.wake_in == 20  # the discovery deadline comes first
    started = _eval([CheckResult("ci", RUNNING), CheckResult("lint", OK)], 40)
    assert started.status is None
    assert started.wake_in == 60


def test_a_check_that_never_appears_is_missing_never_a_pass() -> None:
    verdict = _eval([CheckResult("ci", OK)], 30)
    assert verdict.status is ChecksStatus.MISSING
    assert verdict.missing == ["lint"]
    # Even when the overall timeout is shorter than the discovery timeout.
    short = evaluate(["lint"], [], 5, timeout=5, discovery_timeout=600)
    assert short.status is ChecksStatus.MISSING


def test_started_but_unfinished_is_a_timeout() -> None:
    verdict = _eval([CheckResult("ci", RUNNING), CheckResult("lint", OK)], 100)
    assert verdict.status is ChecksStatus.TIMEOUT
    assert [r.state for r in verdict.reports] == [Reported.TIMEOUT, Reported.PASSED]


def test_diagnosis_says_what_to_look_at() -> None:
    text = diagnose_missing(["build"], {"Build", "lint"}, "mergebot/", "a" * 40)
    assert "no check named 'build' was reported for any mergebot/** commit" in text
    assert "'Build'" in text
    assert "is your CI triggered on pushes to `mergebot/**`?" in text
    seen = diagnose_missing(["lint"], {"lint"}, "mergebot/", "a" * 40)
    assert "ran on other mergebot/** commits" in seen
    assert "aaaaaaa" in seen


def test_check_env_strips_mergebot_settings_and_secrets() -> None:
    env, secrets = check_env(
        {
            "PATH": "/usr/bin",
            "HOME": "/home/bot",
            "MERGEBOT_API_TOKEN": "api-token-value",
            "MERGEBOT_DATA_DIR": "/var/lib/mergebot",
            "GITHUB_TOKEN": "ghp_value",
            "AWS_SECRET_ACCESS_KEY": "aws-value",
            "SLACK_HOOK": "https://hooks.slack/x",
        },
        extra_secret_names=["SLACK_HOOK"],
    )
    assert env == {"PATH": "/usr/bin", "HOME": "/home/bot", "GIT_TERMINAL_PROMPT": "0"}
    assert {"api-token-value", "ghp_value", "aws-value", "https://hooks.slack/x"} <= set(secrets)
    assert "/var/lib/mergebot" not in secrets
    assert mask("token=ghp_value ok", secrets) == "token=*** ok"


def test_tail_keeps_the_end() -> None:
    text = "\n".join(f"line {i}" for i in range(500))
    assert tail(text, lines=3) == "line 497\nline 498\nline 499"
    assert tail("x" * 10, chars=4) == "xxxx"


def test_a_re_run_refused_for_good_ends_the_retries_even_beside_one_not_yet() -> None:
    answer = RerunAnswer(started=["lint"], busy=["e2e"])
    decision = decide_rerun(["ci", "lint", "e2e"], answer, left=60)
    assert decision == RerunDecision(RerunStep.REFUSED, ["ci"])


def test_a_re_run_not_possible_yet_is_asked_again_while_time_is_left() -> None:
    answer = RerunAnswer(started=["lint"], busy=["ci"])
    assert decide_rerun(["ci", "lint"], answer, left=0.5) == RerunDecision(RerunStep.WAIT, ["ci"])
    timed_out = decide_rerun(["ci", "lint"], answer, left=0)
    assert timed_out == RerunDecision(RerunStep.TIMED_OUT, ["ci"])


def test_a_re_run_started_for_every_check_asked_goes_on() -> None:
    answer = RerunAnswer(started=["ci", "lint"])
    assert decide_rerun(["ci", "lint"], answer, left=0) == RerunDecision(
        RerunStep.RUN, ["ci", "lint"]
    )
