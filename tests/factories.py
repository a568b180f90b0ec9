"""Valid canonical events with realistic values; tests override only what they are about."""

from __future__ import annotations

from typing import Any

SHA_A = "a" * 40
SHA_B = "b" * 40
REPO = "acme/widgets"
WHEN = "2026-11-25T10:00:00+00:00"


def raw_event(name: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, dict[str, Any]] = {
        "review_approved": {
            "repo": REPO, "slug": "pr-1", "approved_at": WHEN, "review_round": 1,
            "reviewer_session_id": "alice", "sha": SHA_A,
        },
        "review_dismissed": {
            "repo": REPO, "slug": "pr-1", "dismissed_at": WHEN, "reviewer_session_id": "alice",
        },
        "finalize_ready": {
            "repo": REPO, "slug": "pr-1", "branch": "feature/one", "sha": SHA_A,
            "worker_session_id": "w-1", "orchestrator_session_id": "o-1", "ready_at": WHEN,
        },
        "branch_pushed": {
            "repo": REPO, "branch": "feature/one", "sha": SHA_A, "remote": "origin",
            "pushed_at": WHEN, "pusher": "bob",
        },
        "candidate_withdrawn": {"repo": REPO, "slug": "pr-1", "reason": "closed", "at": WHEN},
        "integration_completed": {
            "repo": REPO, "slug": "pr-1", "branch": "feature/one", "sha": SHA_A,
            "main_before": SHA_B, "main_after": "c" * 40, "integrated_at": WHEN, "checks": [],
        },
        "integration_blocked": {
            "repo": REPO, "slug": "pr-1", "branch": "feature/one", "sha": SHA_A,
            "reason": "merge_conflict", "details": {"files": ["a.txt"]}, "blocked_at": WHEN,
            "followup_id": "pr-1-integration-blocked-aaaaaaa",
        },
        "resume_requested": {"repo": REPO, "slug": "pr-1", "requested_by": "carol", "at": WHEN},
        "priority_set": {
            "repo": REPO, "slug": "pr-1", "priority": 5, "set_by": "carol", "at": WHEN,
        },
        "queue_frozen": {
            "repo": REPO, "base": "main", "reason": "release 2.4", "by": "dana", "at": WHEN,
        },
        "queue_unfrozen": {"repo": REPO, "base": "main", "by": "dana", "at": WHEN},
    }  # fmt: skip
    return {"name": name, **base[name], **overrides}
