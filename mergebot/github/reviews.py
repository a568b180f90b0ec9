"""`pull_request_review` → `review_approved` / `review_dismissed`.

GitHub counts a reviewer's latest review: an approval followed by "changes requested" from the same
reviewer no longer approves, so that review is recorded as a dismissal of the reviewer's approval.
A review that only comments changes nothing. Approvals are recorded whatever the pull request's
base; readiness decides what they are good for.
"""

from __future__ import annotations

from typing import Any

from mergebot.events import ReviewDismissed
from mergebot.github.payloads import ReviewEvent
from mergebot.github.translated import (
    PendingApproval,
    Translation,
    make,
    parse,
    repo_of,
)

EVENT = "pull_request_review"


def translate_review(payload: dict[str, Any]) -> Translation:
    event = parse(ReviewEvent, payload, EVENT)
    repo = repo_of(event.repository.full_name, EVENT)
    review, pr = event.review, event.pull_request
    slug = f"pr-{pr.number}"
    state = review.state.lower()
    if event.action == "submitted" and state == "approved":
        approval = PendingApproval(
            repo=repo,
            slug=slug,
            sha=review.commit_id,
            reviewer=review.user.login,
            approval_id=f"review-{review.id}",
            approved_at=review.submitted_at or pr.updated_at,
            extra={"review_id": review.id},
        )
        return Translation(repo, events=(approval.validated(),))
    if (event.action == "submitted" and state == "changes_requested") or (
        event.action == "dismissed"
    ):
        # The payload has no dismissal time; the pull request's updated_at is when it happened.
        when = review.submitted_at if event.action == "submitted" else pr.updated_at
        dismissed = make(
            ReviewDismissed,
            EVENT,
            repo=repo,
            slug=slug,
            dismissed_at=when or pr.updated_at,
            reviewer_session_id=review.user.login,
            sha=review.commit_id,
            review_id=review.id,
            review_state=state,
        )
        return Translation(repo, events=(dismissed,))
    return Translation.ignore(
        repo, f"a {state} review ({event.action}) does not change any approval"
    )
