"""Translate one GitHub event (name + decoded payload) into what mergebot does with it.

The same function serves the webhook and `mergebot ingest-event` (GitHub Actions), so both paths
store exactly the same events. Pure: the managed base branch of a repo is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mergebot.github.checks import translate_check_run, translate_check_suite, translate_status
from mergebot.github.comments import translate_issue_comment
from mergebot.github.pull_requests import BaseBranchOf, translate_pull_request
from mergebot.github.pushes import translate_push
from mergebot.github.reviews import translate_review
from mergebot.github.translated import Translation, TranslationError

_SIMPLE: dict[str, Callable[[dict[str, Any]], Translation]] = {
    "pull_request_review": translate_review,
    "push": translate_push,
    "issue_comment": translate_issue_comment,
    "check_run": translate_check_run,
    "check_suite": translate_check_suite,
    "status": translate_status,
}

HANDLED = frozenset({"pull_request", "pull_request_target", *_SIMPLE})


def translate(event: str, payload: object, base_branch_of: BaseBranchOf) -> Translation:
    if not isinstance(payload, dict):
        raise TranslationError(event, ["the payload must be a JSON object"])
    # `pull_request_target` (Actions only: runs with secrets for pull requests from forks) carries
    # the same payload as `pull_request`.
    if event in ("pull_request", "pull_request_target"):
        return translate_pull_request(payload, base_branch_of)
    handler = _SIMPLE.get(event)
    if handler is None:
        return Translation.ignore(None, f"GitHub event {event[:60]!r} maps to no canonical event")
    return handler(payload)
