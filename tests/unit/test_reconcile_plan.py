"""Reconciliation's pure decisions: what the log lacks compared with GitHub's state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mergebot.events import (
    CandidateWithdrawn,
    CanonicalEvent,
    Envelope,
    FinalizeReady,
    ReviewApproved,
    envelope_for,
)
from mergebot.forge.base import PullSnapshot
from mergebot.github.reconcile import open_candidates, plan_gone_pull, plan_open_pull, view_of
from mergebot.github.translated import PendingApproval
from tests.fakegithub import bodies

API = "https://api.github.com"
REPO = "acme/widgets"
HEAD = "a" * 40
OLD = "b" * 40
WHEN = datetime(2026, 11, 25, 10, tzinfo=UTC)


def pull(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"author": "bob", "head_ref": "feature", "head_sha": HEAD,
                            "base_ref": "main", "base_sha": "c" * 40, "full": False}  # fmt: skip
    args.update(overrides)
    return bodies.pull(API, REPO, 7, **args)


def envs(*events: CanonicalEvent) -> list[Envelope]:
    return [envelope_for(e, source="github") for e in events]


def ready(sha: str) -> FinalizeReady:
    return FinalizeReady(repo=REPO, slug="pr-7", branch="feature", sha=sha, worker_session_id="bob",
                         orchestrator_session_id="github", ready_at=WHEN)  # fmt: skip


def names(additions: list[Any]) -> list[str]:
    """Event names of the planned drafts (an approval still waits for its review round)."""
    return [
        "review_approved" if isinstance(d, PendingApproval) else d.event_name.value
        for a in additions
        for d in a.drafts
    ]


def test_a_head_the_log_lacks_is_added() -> None:
    view = view_of(envs(ready(OLD)))
    additions = plan_open_pull(REPO, PullSnapshot(pull(), ()), view, "main")
    assert names(additions) == ["branch_pushed", "finalize_ready"]


def test_a_known_head_adds_nothing() -> None:
    view = view_of(envs(ready(HEAD)))
    assert plan_open_pull(REPO, PullSnapshot(pull(), ()), view, "main") == []


def test_a_cancelled_candidate_is_not_put_back() -> None:
    cancel = CandidateWithdrawn(repo=REPO, slug="pr-7", reason="cancelled", at=WHEN)
    view = view_of(envs(ready(HEAD), cancel))
    assert plan_open_pull(REPO, PullSnapshot(pull(), ()), view, "main") == []


def test_a_closed_then_reopened_pull_request_is_ready_again() -> None:
    closed = CandidateWithdrawn(repo=REPO, slug="pr-7", reason="closed", at=WHEN)
    view = view_of(envs(ready(HEAD), closed))
    additions = plan_open_pull(REPO, PullSnapshot(pull(), ()), view, "main")
    assert names(additions) == ["branch_pushed", "finalize_ready"]


def test_a_pull_request_into_another_base_is_not_a_candidate() -> None:
    additions = plan_open_pull(
        REPO, PullSnapshot(pull(base_ref="release"), ()), view_of([]), "main"
    )
    assert additions == []


def test_reviews_are_added_by_id_once() -> None:
    approved = bodies.review(API, REPO, 7, 11, login="alice", state="APPROVED", sha=HEAD)
    changes = bodies.review(API, REPO, 7, 12, login="carol", state="CHANGES_REQUESTED", sha=HEAD)
    known = ReviewApproved(repo=REPO, slug="pr-7", approved_at=WHEN, review_round=1,
                           reviewer_session_id="alice", sha=HEAD, review_id=11)  # fmt: skip
    view = view_of(envs(ready(HEAD), known))
    additions = plan_open_pull(REPO, PullSnapshot(pull(), (approved, changes)), view, "main")
    assert names(additions) == ["review_dismissed"]
    assert additions[0].drafts[0].model_dump()["reviewer_session_id"] == "carol"


def test_a_candidate_closed_behind_our_back_is_withdrawn() -> None:
    view = view_of(envs(ready(HEAD)))
    assert open_candidates(view, []) == ["pr-7"]
    assert open_candidates(view, [7]) == []
    additions = plan_gone_pull(REPO, pull(state="closed", full=True), "main")
    (event,) = additions[0].drafts
    assert event.model_dump(mode="json")["reason"] == "closed"
