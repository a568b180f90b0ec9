"""The readiness projection (SPEC §4), pure: each condition in and out of READY, with reasons."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from mergebot.events import parse_event
from mergebot.readiness import (
    CandidateState,
    CandidateStatus,
    NoteCode,
    ReasonCode,
    RepoFacts,
    Rules,
    evaluate,
    fold,
)
from tests.factories import REPO, SHA_A, SHA_B, raw_event
from tests.fakegit import FakeGit


def at(minute: int) -> str:
    return f"2026-11-25T10:{minute:02d}:00+00:00"


def approve(who: str = "alice", sha: str | None = SHA_A, minute: int = 1, **kw: Any) -> dict:
    ev = raw_event("review_approved", reviewer_session_id=who, approved_at=at(minute), **kw)
    if sha is None:
        ev.pop("sha")
    else:
        ev["sha"] = sha
    return ev


def dismiss(who: str = "alice", minute: int = 5, **kw: Any) -> dict:
    return raw_event("review_dismissed", reviewer_session_id=who, dismissed_at=at(minute), **kw)


def finalize(sha: str = SHA_A, minute: int = 2, branch: str = "feature/one", **kw: Any) -> dict:
    return raw_event("finalize_ready", sha=sha, ready_at=at(minute), branch=branch, **kw)


def push(sha: str = SHA_A, minute: int = 0, branch: str = "feature/one", **kw: Any) -> dict:
    return raw_event("branch_pushed", sha=sha, pushed_at=at(minute), branch=branch, **kw)


READY_SET = [approve(), finalize(), push()]


def project(
    events: list[dict], git: FakeGit | None = None, **rules: Any
) -> dict[str, CandidateState]:
    facts = RepoFacts(repo=REPO)
    for raw in events:
        fold(facts, parse_event(raw).event)
    return evaluate(facts, Rules(**rules), git or FakeGit())


def one(states: dict[str, CandidateState], sha: str = SHA_A) -> CandidateState:
    [found] = [s for s in states.values() if s.sha == sha]
    return found


def codes(state: CandidateState) -> list[ReasonCode]:
    return [r.code for r in state.reasons]


def test_all_conditions_hold_is_ready_with_no_reasons() -> None:
    state = one(project(READY_SET))
    assert state.status == CandidateStatus.READY
    assert state.reasons == []
    assert state.ready_at is not None
    assert state.key == "pr-1:" + SHA_A + ":feature/one"


@pytest.mark.parametrize(
    ("missing", "code"),
    [(0, ReasonCode.APPROVALS_MISSING), (2, ReasonCode.PUSH_MISSING)],
)
def test_a_missing_event_keeps_it_waiting_and_says_which(missing: int, code: ReasonCode) -> None:
    events = [e for i, e in enumerate(READY_SET) if i != missing]
    state = one(project(events))
    assert state.status == CandidateStatus.WAITING
    assert codes(state) == [code]
    assert one(project([*events, READY_SET[missing]])).status == CandidateStatus.READY


def test_without_finalize_the_slug_waits_for_one() -> None:
    [state] = project([approve(), push()]).values()
    assert state.status == CandidateStatus.WAITING
    assert state.sha is None
    assert codes(state) == [ReasonCode.FINALIZE_MISSING]
    assert "finalize_ready" in state.reasons[0].text


def test_unreachable_sha_is_checked_with_git_not_trusted_from_the_event() -> None:
    git = FakeGit(unreachable={(SHA_A, "feature/one")})
    state = one(project(READY_SET, git))
    assert codes(state) == [ReasonCode.NOT_REACHABLE]
    assert "not reachable from origin/feature/one" in state.reasons[0].text
    git.unreachable.clear()
    assert one(project(READY_SET, git)).status == CandidateStatus.READY


def test_sha_already_on_base_is_integrated_not_ready() -> None:
    state = one(project(READY_SET, FakeGit(on_base_shas={SHA_A})))
    assert state.status == CandidateStatus.INTEGRATED
    assert codes(state) == [ReasonCode.ALREADY_INTEGRATED]
    assert "already on origin/main" in state.reasons[0].text


def test_git_trouble_is_a_reason_not_a_verdict() -> None:
    state = one(project(READY_SET, FakeGit(broken="fetch failed")))
    assert state.status == CandidateStatus.WAITING
    assert codes(state) == [ReasonCode.GIT_UNAVAILABLE]
    assert state.git_unknown()


def test_push_to_another_remote_does_not_count_and_is_noted() -> None:
    facts = RepoFacts(repo=REPO)
    for raw in [approve(), finalize(), push(remote="upstream")]:
        result = fold(facts, parse_event(raw).event)
    assert [n.code for n in result.notes] == [NoteCode.OTHER_REMOTE]
    state = one(evaluate(facts, Rules(), FakeGit()))
    assert codes(state) == [ReasonCode.PUSH_MISSING]


def test_required_approvals_counts_distinct_reviewers() -> None:
    twice = [*READY_SET, approve("alice", minute=3, review_round=2)]
    state = one(project(twice, required_approvals=2))
    assert codes(state) == [ReasonCode.APPROVALS_MISSING]
    assert "needs 2 approvals from distinct reviewers, has 1 (alice)" in state.reasons[0].text
    assert one(project([*twice, approve("bob")], required_approvals=2)).status == "ready"


def test_newer_finalize_supersedes_and_bound_approval_goes_stale() -> None:
    events = [*READY_SET, finalize(SHA_B, minute=7), push(SHA_B, minute=6)]
    states = project(events)
    old, new = one(states, SHA_A), one(states, SHA_B)
    assert old.status == CandidateStatus.SUPERSEDED
    assert codes(old) == [ReasonCode.SUPERSEDED]
    assert "bbbbbbb" in old.reasons[0].text
    assert new.status == CandidateStatus.WAITING
    assert codes(new) == [ReasonCode.APPROVALS_MISSING]
    assert "not for this sha: alice approved aaaaaaa" in new.reasons[0].text


def test_approval_survives_a_new_push_when_not_bound_to_sha() -> None:
    events = [*READY_SET, finalize(SHA_B, minute=7), push(SHA_B, minute=6)]
    assert one(project(events, approvals_bind_to_sha=False), SHA_B).status == "ready"


def test_approval_without_sha_counts_for_every_sha() -> None:
    events = [approve(sha=None), finalize(SHA_B), push(SHA_B)]
    assert one(project(events), SHA_B).status == CandidateStatus.READY


def test_finalize_order_is_by_ready_at_not_arrival() -> None:
    late_old = [finalize(SHA_B, minute=7), push(SHA_B), *READY_SET]
    assert one(project(late_old), SHA_A).status == CandidateStatus.SUPERSEDED


def test_dismissal_by_the_same_reviewer_cancels_the_approval() -> None:
    state = one(project([*READY_SET, dismiss("alice")]))
    assert codes(state) == [ReasonCode.APPROVALS_MISSING]
    assert "dismissed: alice" in state.reasons[0].text
    # Another reviewer's dismissal does not touch alice's approval…
    assert one(project([*READY_SET, dismiss("bob")])).status == CandidateStatus.READY
    # …and a new approval after the dismissal counts again, whatever the arrival order.
    again = [approve(minute=9, review_round=2), dismiss("alice"), *READY_SET]
    assert one(project(again)).status == CandidateStatus.READY


def test_withdrawal_then_reopen() -> None:
    withdrawn = [*READY_SET, raw_event("candidate_withdrawn", at=at(4), reason="closed")]
    state = one(project(withdrawn))
    assert state.status == CandidateStatus.WITHDRAWN
    assert state.reasons[0].text == "withdrawn (closed)"
    reopened = [*withdrawn, finalize(minute=8)]
    assert one(project(reopened)).status == CandidateStatus.READY


def test_blocked_until_a_later_resume() -> None:
    blocked = raw_event("integration_blocked", blocked_at=at(10))
    state = one(project([*READY_SET, blocked]))
    assert state.status == CandidateStatus.BLOCKED
    assert state.followup_id == "pr-1-integration-blocked-aaaaaaa"
    assert "merge_conflict: a.txt" in state.reasons[0].text
    early = raw_event("resume_requested", at=at(9))
    assert one(project([*READY_SET, blocked, early])).status == CandidateStatus.BLOCKED
    resumed = one(project([*READY_SET, blocked, raw_event("resume_requested", at=at(11))]))
    assert resumed.status == CandidateStatus.READY
    assert resumed.resumed_followup == "pr-1-integration-blocked-aaaaaaa"


def test_completed_integration_is_final_for_the_candidate() -> None:
    done = raw_event("integration_completed", integrated_at=at(12))
    state = one(project([*READY_SET, done, finalize(SHA_B, minute=13)]))
    assert state.status == CandidateStatus.INTEGRATED
    assert state.by_event


def test_duplicates_and_any_order_give_the_same_states() -> None:
    events = [
        *READY_SET, dismiss("alice", minute=3), approve("alice", minute=4, review_round=2),
        finalize(SHA_B, minute=6), push(SHA_B, minute=6), approve("bob", SHA_B, minute=8),
        raw_event("integration_blocked", sha=SHA_B, blocked_at=at(9)),
    ]  # fmt: skip
    expected = project(events)
    for order in itertools.islice(itertools.permutations(events), 0, None, 97):
        assert project([*order, *order[:3]]) == expected


def test_facts_serialize_equally_whatever_the_order() -> None:
    events = [*READY_SET, dismiss("bob"), finalize(SHA_B, minute=7)]
    dumps = set()
    for order in itertools.permutations(events):
        facts = RepoFacts(repo=REPO)
        for raw in order:
            fold(facts, parse_event(raw).event)
        dumps.add(facts.canonical().model_dump_json())
    assert len(dumps) == 1


# -- ties: GitHub stamps to the second --------------------------------------------------------


def same_second_heads(**newer: Any) -> list[dict]:
    """SHA_B was the head, then SHA_A was pushed in the same second (SHA_A sorts first)."""
    return [
        approve("alice", SHA_A), approve("bob", SHA_B),
        finalize(SHA_B, minute=7), push(SHA_B, minute=7),
        finalize(SHA_A, minute=7, **newer), push(SHA_A, minute=7),
    ]  # fmt: skip


def test_same_second_head_named_by_previous_sha_is_current_in_any_order() -> None:
    events = same_second_heads(previous_sha=SHA_B)
    for order in itertools.permutations(events):
        states = project(list(order))
        assert one(states, SHA_A).status == CandidateStatus.READY
        assert one(states, SHA_B).status == CandidateStatus.SUPERSEDED
        assert "superseded by aaaaaaa" in one(states, SHA_B).reasons[0].text


def test_same_second_heads_without_previous_sha_are_ordered_by_git_ancestry() -> None:
    git = FakeGit(ancestry={(SHA_A, SHA_B)})  # SHA_A descends from SHA_B
    states = project(same_second_heads(), git)
    assert one(states, SHA_A).status == CandidateStatus.READY
    assert one(states, SHA_B).status == CandidateStatus.SUPERSEDED
    # Unrelated heads (a force push): the sha decides, the same for every arrival order.
    for order in itertools.permutations(same_second_heads()):
        states = project(list(order))
        assert one(states, SHA_B).status == CandidateStatus.READY
        assert one(states, SHA_A).status == CandidateStatus.SUPERSEDED


def test_same_second_heads_wait_when_git_cannot_order_them() -> None:
    states = project(same_second_heads(), FakeGit(broken="fetch failed"))
    assert {s.status for s in states.values()} == {CandidateStatus.WAITING}
    assert all(s.git_unknown() for s in states.values())
    # An older head is superseded whatever git says; a named previous needs no git at all.
    older = [finalize(SHA_B, minute=6), finalize(SHA_A, minute=7)]
    broken = project(older, FakeGit(broken="fetch failed"))
    assert one(broken, SHA_B).status == CandidateStatus.SUPERSEDED
    named = project(same_second_heads(previous_sha=SHA_B), FakeGit(ancestry=set()))
    assert one(named, SHA_A).status == CandidateStatus.READY


def test_previous_sha_that_is_not_a_sha_is_ignored() -> None:
    states = project(same_second_heads(previous_sha="not-a-sha"))
    assert one(states, SHA_B).status == CandidateStatus.READY


def test_resume_in_the_same_second_as_the_block_resumes_it() -> None:
    blocked = raw_event("integration_blocked", blocked_at=at(10))
    resume = raw_event("resume_requested", at=at(10))
    facts = RepoFacts(repo=REPO)
    for raw in [*READY_SET, blocked]:
        fold(facts, parse_event(raw).event)
    assert fold(facts, parse_event(resume).event).notes == []
    for order in itertools.permutations([*READY_SET, blocked, resume]):
        state = one(project(list(order)))
        assert state.status == CandidateStatus.READY
        assert state.resumed_followup == "pr-1-integration-blocked-aaaaaaa"
    # mergebot stamps the block to the microsecond, GitHub the comment to the second.
    precise = raw_event("integration_blocked", blocked_at="2026-11-25T10:10:00.400+00:00")
    assert one(project([*READY_SET, precise, resume])).status == CandidateStatus.READY
    earlier = raw_event("resume_requested", at="2026-11-25T10:09:59+00:00")
    assert one(project([*READY_SET, precise, earlier])).status == CandidateStatus.BLOCKED


def test_one_resume_requeues_a_blocked_candidate_once() -> None:
    """The same conflict again after the resume was acted on (here within the same second, as a
    fast conflict does) needs a new resume: one resume never re-queues twice."""
    first = raw_event(
        "integration_blocked", blocked_at="2026-11-25T10:10:00.100+00:00",
        followup_id="pr-1-integration-blocked-aaaaaaa",
    )  # fmt: skip
    resume = raw_event("resume_requested", at="2026-11-25T10:10:00.500+00:00")
    again = raw_event(
        "integration_blocked", blocked_at="2026-11-25T10:10:00.900+00:00",
        followup_id="pr-1-integration-blocked-aaaaaaa-2",
    )  # fmt: skip
    for order in itertools.permutations([*READY_SET, first, resume, again]):
        state = one(project(list(order)))
        assert state.status == CandidateStatus.BLOCKED
        assert state.followup_id == "pr-1-integration-blocked-aaaaaaa-2"
    # A second resume answers the second block; a GitHub comment of that second does too.
    later = raw_event("resume_requested", at="2026-11-25T10:10:07+00:00", requested_by="bob")
    assert one(project([*READY_SET, first, resume, again, later])).status == (CandidateStatus.READY)
    same_second = raw_event("resume_requested", at="2026-11-25T10:10:00+00:00", requested_by="x")
    both = [*READY_SET, first, again, resume, same_second]
    assert one(project(both)).status == CandidateStatus.READY


def test_a_push_touches_the_slugs_finalized_on_its_branch_also_after_a_reload() -> None:
    facts = RepoFacts(repo=REPO)
    for raw in [
        finalize(SHA_A), finalize(SHA_B, slug="pr-2", branch="feature/two"),
        finalize(SHA_B, minute=3, slug="pr-3"),
    ]:  # fmt: skip
        fold(facts, parse_event(raw).event)
    touched = fold(facts, parse_event(push(SHA_A)).event).slugs
    assert touched == {"pr-1", "pr-3"}
    # The branch index is derived, not stored: a projection loaded from JSON has it too.
    loaded = RepoFacts.model_validate_json(facts.model_dump_json())
    assert "by_branch" not in facts.model_dump_json()
    assert fold(loaded, parse_event(push(SHA_B, branch="feature/two")).event).slugs == {"pr-2"}
    assert fold(loaded.canonical(), parse_event(push(SHA_A)).event).slugs == {"pr-1", "pr-3"}
    assert fold(loaded, parse_event(push(SHA_A, branch="feature/none")).event).slugs == set()
