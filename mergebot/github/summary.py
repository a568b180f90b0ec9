"""What the event log says about one pull request: its head, approvals and latest outcome.

A pure fold over the repo's envelopes, used by the command worker: `/mergebot merge` needs the
head the commenter saw (the latest `finalize_ready` at or before the comment), and
`/mergebot status` reports the rest. Comments carry no head sha, so the log is where it comes from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mergebot.events import (
    CandidateWithdrawn,
    Envelope,
    EventName,
    FinalizeReady,
    IntegrationBlocked,
    IntegrationCompleted,
    ReviewApproved,
    ReviewDismissed,
)


@dataclass
class SlugSummary:
    slug: str
    branch: str | None = None
    sha: str | None = None
    ready_at: datetime | None = None
    withdrawn: str | None = None  # reason, when the head was withdrawn after it was ready
    approvals: dict[str, str | None] = field(default_factory=dict)  # reviewer -> sha (or None)
    outcome: str | None = None  # "integrated" | "blocked" (of the current head)
    reason: str | None = None
    followup_id: str | None = None
    main_after: str | None = None
    # Filled from the queue store (not the log) for `/mergebot status`.
    queue_status: str | None = None
    queue_position: int | None = None  # 1-based, among queued items

    @property
    def head_approvers(self) -> list[str]:
        """Reviewers whose current approval counts for the head sha."""
        return sorted(r for r, sha in self.approvals.items() if sha in (None, self.sha))


_RELEVANT = frozenset(
    {
        EventName.FINALIZE_READY,
        EventName.CANDIDATE_WITHDRAWN,
        EventName.REVIEW_APPROVED,
        EventName.REVIEW_DISMISSED,
        EventName.INTEGRATION_COMPLETED,
        EventName.INTEGRATION_BLOCKED,
    }
)


def summarize(
    slug: str, envelopes: Iterable[Envelope], *, as_of: datetime | None = None
) -> SlugSummary:
    """Fold the envelopes of one repo (in log order) into the summary of `slug`.

    With `as_of`, only the candidate state known at that time counts (heads and withdrawals
    timestamped later are left out), so a command acts on what its author saw.
    """
    summary = SlugSummary(slug)
    for env in envelopes:
        if env.name not in _RELEVANT or env.payload.get("slug") != slug:
            continue
        event = env.event()
        if isinstance(event, FinalizeReady):
            if as_of is not None and event.ready_at > as_of:
                continue
            if summary.ready_at is not None and event.ready_at < summary.ready_at:
                continue
            if event.sha != summary.sha:
                summary.outcome = summary.reason = summary.followup_id = None
                summary.main_after = None
            summary.branch, summary.sha, summary.ready_at = event.branch, event.sha, event.ready_at
            summary.withdrawn = None
        elif isinstance(event, CandidateWithdrawn):
            if as_of is not None and event.at > as_of:
                continue
            if summary.ready_at is None or event.at >= summary.ready_at:
                summary.withdrawn = event.reason.value
        elif isinstance(event, ReviewApproved):
            summary.approvals[event.reviewer_session_id] = event.sha
        elif isinstance(event, ReviewDismissed):
            summary.approvals.pop(event.reviewer_session_id, None)
        elif isinstance(event, IntegrationCompleted) and event.sha == summary.sha:
            summary.outcome, summary.main_after = "integrated", event.main_after
        elif isinstance(event, IntegrationBlocked) and event.sha == summary.sha:
            summary.outcome, summary.reason = "blocked", event.reason
            summary.followup_id = event.followup_id
    return summary
