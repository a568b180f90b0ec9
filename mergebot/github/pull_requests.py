"""`pull_request` → `finalize_ready` (+ `branch_pushed`) or `candidate_withdrawn`.

An open, non-draft pull request into the managed base is a candidate at its head sha: opened,
reopened, synchronize (new head), ready_for_review, and edited when its base moved *into* the
managed base. Closed, converted to draft, or edited with its base moved *away* withdraws it.

The event also carries a `branch_pushed` for the head: it states that the head branch is at that
sha right now, which is what readiness needs. For pull requests from forks it is the only source
(the fork's pushes never reach us); their branch is `pull/<n>/head`, the ref GitHub keeps for them
on the base repository, fetched into the mirror like any branch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mergebot.config import REMOTE_NAME
from mergebot.events import BranchPushed, CandidateWithdrawn, FinalizeReady, WithdrawReason
from mergebot.github.payloads import PullRequestEvent
from mergebot.github.translated import (
    ORCHESTRATOR,
    Draft,
    Translation,
    make,
    parse,
    repo_of,
)
from mergebot.readiness import PREVIOUS_SHA

EVENT = "pull_request"
OPENING = frozenset({"opened", "reopened", "synchronize", "ready_for_review"})

BaseBranchOf = Callable[[str], str]


def fork_branch(number: int) -> str:
    return f"pull/{number}/head"


def translate_pull_request(payload: dict[str, Any], base_branch_of: BaseBranchOf) -> Translation:
    event = parse(PullRequestEvent, payload, EVENT)
    repo = repo_of(event.repository.full_name, EVENT)
    pr = event.pull_request
    managed = base_branch_of(repo)
    action = event.action
    if action in OPENING or action == "edited":
        moved_from = _base_change(event.changes)
        if action == "edited" and moved_from is None:
            return Translation.ignore(repo, "pull request edited without a base change")
        if pr.base.ref == managed:
            return _candidate(event, repo)
        if action == "edited" and moved_from == managed:
            return _withdrawn(event, repo, WithdrawReason.BASE_CHANGED, pr.updated_at)
        return Translation.ignore(
            repo, f"pull request targets {pr.base.ref!r}, not the managed base {managed!r}"
        )
    if action in ("closed", "converted_to_draft"):
        if pr.base.ref != managed:
            return Translation.ignore(
                repo, f"pull request targets {pr.base.ref!r}, not the managed base {managed!r}"
            )
        if action == "closed":
            return _withdrawn(
                event, repo, WithdrawReason.CLOSED, pr.closed_at or pr.updated_at, bool(pr.merged)
            )
        return _withdrawn(event, repo, WithdrawReason.DRAFT, pr.updated_at)
    return Translation.ignore(repo, f"pull_request {action} does not change a candidate")


def _base_change(changes: dict[str, Any] | None) -> str | None:
    """The previous base branch when an edit changed it (`changes.base.ref.from`)."""
    base = (changes or {}).get("base")
    if not isinstance(base, dict):
        return None
    ref = base.get("ref")
    previous = ref.get("from") if isinstance(ref, dict) else None
    return previous if isinstance(previous, str) else ""


def _candidate(event: PullRequestEvent, repo: str) -> Translation:
    pr = event.pull_request
    if pr.state != "open":
        return Translation.ignore(repo, f"pull request is {pr.state}")
    if pr.draft:
        return Translation.ignore(repo, "pull request is a draft")
    head_repo = pr.head.repo.full_name if pr.head.repo else None
    fork = head_repo is None or head_repo.lower() != repo.lower()
    branch = fork_branch(pr.number) if fork else pr.head.ref
    extra: dict[str, Any] = {"base": pr.base.ref, "pr_number": pr.number}
    if fork:
        extra |= {"fork": True, "head_repo": head_repo, "head_ref": pr.head.ref}
    if event.action == "synchronize" and event.before and event.before != pr.head.sha:
        # Orders this head after the one it replaced when both carry the same second.
        extra[PREVIOUS_SHA] = event.before
    pushed = make(
        BranchPushed,
        EVENT,
        repo=repo,
        branch=branch,
        sha=pr.head.sha,
        remote=REMOTE_NAME,
        pushed_at=pr.updated_at,
        pusher=event.sender.login,
    )
    ready = make(
        FinalizeReady,
        EVENT,
        repo=repo,
        slug=f"pr-{pr.number}",
        branch=branch,
        sha=pr.head.sha,
        worker_session_id=pr.user.login,
        orchestrator_session_id=ORCHESTRATOR,
        ready_at=pr.updated_at,
        **extra,
    )
    events: tuple[Draft, ...] = (pushed, ready)
    return Translation(repo, events=events)


def _withdrawn(
    event: PullRequestEvent,
    repo: str,
    reason: WithdrawReason,
    at: str,
    merged: bool | None = None,
) -> Translation:
    extra: dict[str, Any] = {"pr_number": event.pull_request.number}
    if merged is not None:
        extra["merged"] = merged
    withdrawn = make(
        CandidateWithdrawn,
        EVENT,
        repo=repo,
        slug=f"pr-{event.pull_request.number}",
        reason=reason,
        at=at,
        **extra,
    )
    return Translation(repo, events=(withdrawn,))
