"""`check_run`, `check_suite`, `status` → a wake-up for an integrator waiting on that commit.

Nothing is stored: the integrator asks the forge for the results when woken (and polls anyway),
so a lost wake-up costs latency, never correctness.
"""

from __future__ import annotations

from typing import Any

from mergebot.github.payloads import CheckRunEvent, CheckSuiteEvent, StatusEvent
from mergebot.github.translated import CheckSignal, Translation, TranslationError, parse, repo_of
from mergebot.ids import is_sha


def _signal(event: str, repo: str, sha: str) -> Translation:
    if not is_sha(sha):
        raise TranslationError(event, [f"head sha {sha[:60]!r} is not a 40-hex commit sha"])
    return Translation(repo, signal=CheckSignal(repo, sha))


def translate_check_run(payload: dict[str, Any]) -> Translation:
    event = parse(CheckRunEvent, payload, "check_run")
    repo = repo_of(event.repository.full_name, "check_run")
    return _signal("check_run", repo, event.check_run.head_sha)


def translate_check_suite(payload: dict[str, Any]) -> Translation:
    event = parse(CheckSuiteEvent, payload, "check_suite")
    repo = repo_of(event.repository.full_name, "check_suite")
    return _signal("check_suite", repo, event.check_suite.head_sha)


def translate_status(payload: dict[str, Any]) -> Translation:
    event = parse(StatusEvent, payload, "status")
    repo = repo_of(event.repository.full_name, "status")
    return _signal("status", repo, event.sha)
