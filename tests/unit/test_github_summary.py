"""The pull-request summary folded from the log: head as of a time, approvals, outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mergebot.events import Envelope, envelope_for, parse_event
from mergebot.github.summary import summarize
from tests.factories import SHA_A, SHA_B, raw_event


def env(name: str, **fields: Any) -> Envelope:
    return envelope_for(parse_event(raw_event(name, **fields)).event, source="test")


def test_head_is_the_latest_ready_sha_and_dismissals_cancel_approvals() -> None:
    log = [
        env("finalize_ready", sha=SHA_A, ready_at="2026-11-25T10:00:00Z"),
        env("review_approved", reviewer_session_id="alice", sha=SHA_A),
        env("review_approved", reviewer_session_id="bob", sha=SHA_A),
        env("review_dismissed", reviewer_session_id="bob"),
        env("finalize_ready", sha=SHA_B, ready_at="2026-11-25T11:00:00Z"),
        env("review_approved", reviewer_session_id="carol", sha=SHA_B),
        env("finalize_ready", slug="pr-9", sha=SHA_A, ready_at="2026-11-25T12:00:00Z"),
    ]
    summary = summarize("pr-1", log)
    assert (summary.sha, summary.branch) == (SHA_B, "feature/one")
    assert summary.head_approvers == ["carol"]
    earlier = summarize("pr-1", log, as_of=datetime(2026, 11, 25, 10, 30, tzinfo=UTC))
    assert earlier.sha == SHA_A
    assert earlier.head_approvers == ["alice"]


def test_withdrawal_and_outcomes_belong_to_the_current_head() -> None:
    log = [
        env("finalize_ready", sha=SHA_A, ready_at="2026-11-25T10:00:00Z"),
        env("integration_blocked", sha=SHA_A),
        env("candidate_withdrawn", reason="draft", at="2026-11-25T10:30:00Z"),
    ]
    summary = summarize("pr-1", log)
    assert (summary.outcome, summary.reason) == ("blocked", "merge_conflict")
    assert summary.followup_id == "pr-1-integration-blocked-aaaaaaa"
    assert summary.withdrawn == "draft"
    log.append(env("finalize_ready", sha=SHA_B, ready_at="2026-11-25T11:00:00Z"))
    fresh = summarize("pr-1", log)
    assert (fresh.sha, fresh.outcome, fresh.withdrawn) == (SHA_B, None, None)
