"""Translation of real GitHub payloads (and the variants derived from them) into canonical events.

Every produced event is compared whole, so each field — and each extra field — is asserted.
"""

from __future__ import annotations

from typing import Any

import pytest

from mergebot.events import CanonicalEvent
from mergebot.github.translate import translate
from mergebot.github.translated import CheckSignal, PendingApproval, Translation, TranslationError
from tests import ghsupport as gh
from tests.ghsupport import BASE, HEAD, REPO

TAG_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"


def managed(repo: str) -> str:
    assert repo == REPO
    return BASE


def run(event: str, payload: dict[str, Any]) -> Translation:
    return translate(event, payload, managed)


def dumped(translation: Translation) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for draft in translation.events:
        event: CanonicalEvent = draft.complete(1) if isinstance(draft, PendingApproval) else draft
        out.append((event.event_name.value, event.model_dump(mode="json")))
    return out


def candidate(pushed_at: str, *, branch: str = "changes", **extra: Any) -> list[Any]:
    return [
        (
            "branch_pushed",
            {
                "repo": REPO,
                "branch": branch,
                "sha": HEAD,
                "remote": "origin",
                "pushed_at": pushed_at,
                "pusher": "Codertocat",
            },
        ),
        (
            "finalize_ready",
            {
                "repo": REPO,
                "slug": "pr-2",
                "branch": branch,
                "sha": HEAD,
                "worker_session_id": "Codertocat",
                "orchestrator_session_id": "github",
                "ready_at": pushed_at,
                "base": BASE,
                "pr_number": 2,
                **extra,
            },
        ),
    ]


SYNC_BEFORE = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"


@pytest.mark.parametrize(
    ("fixture", "when", "extra"),
    [
        ("pull_request.opened", "2019-05-15T15:20:33Z", {}),
        ("pull_request.reopened", "2019-05-15T15:20:33Z", {}),
        # A new head names the one it replaced: two heads of one second stay in order.
        ("pull_request.synchronize", "2019-05-15T15:20:33Z", {"previous_sha": SYNC_BEFORE}),
        ("pull_request.ready_for_review", "2019-05-15T15:21:18Z", {}),
    ],
)
def test_open_pull_request_into_the_managed_base_is_a_candidate(
    fixture: str, when: str, extra: dict[str, str]
) -> None:
    translation = run("pull_request", gh.load(fixture))
    assert translation.ignored is None
    assert translation.repo == REPO
    assert dumped(translation) == candidate(when, **extra)
    assert translation.command is None
    assert translation.signal is None


def test_pull_request_target_of_actions_is_translated_like_pull_request() -> None:
    payload = gh.load("pull_request.opened")
    assert dumped(run("pull_request_target", payload)) == dumped(run("pull_request", payload))


def test_pull_request_from_a_fork_is_a_candidate_on_its_pull_ref() -> None:
    translation = run("pull_request", gh.fork_opened())
    assert dumped(translation) == candidate(
        "2019-05-15T15:20:33Z",
        branch="pull/2/head",
        fork=True,
        head_repo="octo-fork/Hello-World",
        head_ref="changes",
    )


def test_base_changed_into_the_managed_base_makes_a_candidate() -> None:
    translation = run("pull_request", gh.base_changed("develop", BASE))
    assert dumped(translation) == candidate("2019-05-15T15:20:33Z")


def test_base_changed_away_from_the_managed_base_withdraws() -> None:
    translation = run("pull_request", gh.base_changed(BASE, "develop"))
    assert dumped(translation) == [
        (
            "candidate_withdrawn",
            {
                "repo": REPO,
                "slug": "pr-2",
                "reason": "base_changed",
                "at": "2019-05-15T15:20:33Z",
                "pr_number": 2,
            },
        )
    ]


def test_closed_pull_request_is_withdrawn_and_says_whether_it_was_merged() -> None:
    translation = run("pull_request", gh.load("pull_request.closed"))
    assert dumped(translation) == [
        (
            "candidate_withdrawn",
            {
                "repo": REPO,
                "slug": "pr-2",
                "reason": "closed",
                "at": "2019-05-15T15:21:18Z",
                "pr_number": 2,
                "merged": False,
            },
        )
    ]


def test_converted_to_draft_is_withdrawn() -> None:
    translation = run("pull_request", gh.load("pull_request.converted_to_draft"))
    assert dumped(translation) == [
        (
            "candidate_withdrawn",
            {
                "repo": REPO,
                "slug": "pr-2",
                "reason": "draft",
                "at": "2019-05-15T15:21:18Z",
                "pr_number": 2,
            },
        )
    ]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (gh.draft_opened(), "pull request is a draft"),
        (gh.load("pull_request.labeled"), "pull_request labeled does not change a candidate"),
        (gh.base_changed("develop", "release"), "targets 'release', not the managed base"),
    ],
)
def test_pull_request_actions_that_change_no_candidate_are_ignored(
    payload: dict[str, Any], reason: str
) -> None:
    translation = run("pull_request", payload)
    assert translation.events == ()
    assert translation.ignored is not None
    assert reason in translation.ignored


def test_title_edit_is_ignored() -> None:
    payload = gh.load("pull_request.opened")
    payload["action"] = "edited"
    payload["changes"] = {"title": {"from": "old title"}}
    assert run("pull_request", payload).ignored == "pull request edited without a base change"


def test_pull_request_into_another_base_is_ignored_by_the_repos_config() -> None:
    translation = translate("pull_request", gh.load("pull_request.opened"), lambda repo: "main")
    assert translation.events == ()
    assert translation.ignored == "pull request targets 'master', not the managed base 'main'"
    closed = translate("pull_request", gh.load("pull_request.closed"), lambda repo: "main")
    assert closed.events == ()


def test_approved_review_becomes_review_approved_on_the_reviewed_commit() -> None:
    translation = run("pull_request_review", gh.review("approved"))
    [draft] = translation.events
    assert isinstance(draft, PendingApproval)
    assert draft.approval_id == "review-237895671"
    assert dumped(translation) == [
        (
            "review_approved",
            {
                "repo": REPO,
                "slug": "pr-2",
                "approved_at": "2019-05-15T15:20:38Z",
                "review_round": 1,
                "reviewer_session_id": "Codertocat",
                "sha": HEAD,
                "review_id": 237895671,
            },
        )
    ]


def test_upper_case_review_state_is_understood() -> None:
    translation = run("pull_request_review", gh.review("APPROVED"))
    assert [name for name, _ in dumped(translation)] == ["review_approved"]


def test_dismissed_review_becomes_review_dismissed() -> None:
    translation = run("pull_request_review", gh.load("pull_request_review.dismissed"))
    assert dumped(translation) == [
        (
            "review_dismissed",
            {
                "repo": REPO,
                "slug": "pr-2",
                "dismissed_at": "2019-05-15T15:20:38Z",
                "reviewer_session_id": "Codertocat",
                "sha": HEAD,
                "review_id": 237895671,
                "review_state": "dismissed",
            },
        )
    ]


def test_changes_requested_cancels_the_reviewers_approval() -> None:
    translation = run("pull_request_review", gh.review("changes_requested"))
    assert dumped(translation) == [
        (
            "review_dismissed",
            {
                "repo": REPO,
                "slug": "pr-2",
                "dismissed_at": "2019-05-15T15:20:38Z",
                "reviewer_session_id": "Codertocat",
                "sha": HEAD,
                "review_id": 237895671,
                "review_state": "changes_requested",
            },
        )
    ]


def test_commenting_review_is_ignored() -> None:
    translation = run("pull_request_review", gh.load("pull_request_review.submitted"))
    assert translation.events == ()
    assert translation.ignored == "a commented review (submitted) does not change any approval"


def test_branch_push_becomes_branch_pushed() -> None:
    translation = run("push", gh.load("push.branch_created"))
    assert dumped(translation) == [
        (
            "branch_pushed",
            {
                "repo": REPO,
                "branch": "master",
                "sha": TAG_SHA,
                "remote": "origin",
                "pushed_at": "2019-05-15T15:20:57Z",
                "pusher": "Codertocat",
                "forced": False,
            },
        )
    ]


def test_feature_branch_push_becomes_branch_pushed() -> None:
    translation = run("push", gh.feature_push())
    [(name, fields)] = dumped(translation)
    assert (name, fields["branch"], fields["sha"]) == ("branch_pushed", "changes", TAG_SHA)


def test_branch_deletion_is_recorded_with_the_zero_sha() -> None:
    translation = run("push", gh.feature_deleted())
    assert dumped(translation) == [
        (
            "branch_pushed",
            {
                "repo": REPO,
                "branch": "changes",
                "sha": "0" * 40,
                "remote": "origin",
                "pushed_at": "2019-05-15T15:20:57Z",
                "pusher": "Codertocat",
                "deleted": True,
                "before": TAG_SHA,
            },
        )
    ]


@pytest.mark.parametrize("fixture", ["push.tag_created", "push.tag_deleted"])
def test_tag_pushes_are_ignored(fixture: str) -> None:
    translation = run("push", gh.load(fixture))
    assert translation.events == ()
    assert translation.ignored == "tag push (refs/tags/simple-tag)"


def test_command_comment_on_a_pull_request_becomes_a_command_request() -> None:
    translation = run("issue_comment", gh.pr_comment("LGTM\n/mergebot MERGE\n"))
    assert translation.events == ()
    assert translation.command is not None
    assert translation.command.model_dump(mode="json") == {
        "repo": REPO,
        "number": 2,
        "comment_id": 492700400,
        "command": "merge",
        "line": "/mergebot MERGE",
        "argument": "",
        "author": "Codertocat",
        "created_at": "2019-05-15T15:25:00Z",
        "html_url": f"https://github.com/{REPO}/pull/2#issuecomment-492700400",
    }
    assert translation.command.slug == "pr-2"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (gh.load("issue_comment.created"), "comment on an issue, not on a pull request"),
        (gh.load("issue_comment.edited"), "comment edited: only a new comment is read"),
        (gh.pr_comment("/mergebot merge", action="edited"), "comment edited"),
        (gh.pr_comment("/mergebot merge", user_type="Bot"), "comment written by a bot"),
        (gh.pr_comment("> /mergebot merge"), "comment has no /mergebot command"),
        (gh.pr_comment("```\n/mergebot merge\n```"), "comment has no /mergebot command"),
    ],
)
def test_comments_that_do_not_command(payload: dict[str, Any], reason: str) -> None:
    translation = run("issue_comment", payload)
    assert translation.command is None
    assert translation.events == ()
    assert translation.ignored is not None
    assert translation.ignored.startswith(reason)


@pytest.mark.parametrize(
    ("event", "fixture", "sha"),
    [
        ("check_run", "check_run.completed", HEAD),
        ("check_suite", "check_suite.completed", HEAD),
        ("status", "status", TAG_SHA),
    ],
)
def test_check_reports_become_a_wake_up_for_their_commit(
    event: str, fixture: str, sha: str
) -> None:
    translation = run(event, gh.load(fixture))
    assert translation.events == ()
    assert translation.signal == CheckSignal(REPO, sha)


def test_unknown_event_is_ignored_with_a_reason() -> None:
    translation = run("star", {"action": "created"})
    assert translation.ignored == "GitHub event 'star' maps to no canonical event"


@pytest.mark.parametrize(
    ("event", "payload", "problem"),
    [
        ("pull_request", {"action": "opened"}, "pull_request: Field required"),
        ("push", [1, 2], "the payload must be a JSON object"),
        ("status", {**gh.load("status"), "sha": "nope"}, "is not a 40-hex commit sha"),
    ],
)
def test_payloads_missing_what_is_needed_are_refused_with_the_reason(
    event: str, payload: Any, problem: str
) -> None:
    with pytest.raises(TranslationError) as caught:
        run(event, payload)
    assert problem in str(caught.value)


def test_a_sha_that_is_not_a_sha_is_refused() -> None:
    payload = gh.review("approved")
    payload["review"]["commit_id"] = "HEAD~1"
    with pytest.raises(TranslationError, match="sha"):
        run("pull_request_review", payload)


def test_a_repository_name_that_is_not_owner_slash_name_is_refused() -> None:
    payload = gh.load("push.branch_created")
    payload["repository"]["full_name"] = "../etc"
    with pytest.raises(TranslationError, match="not owner/name"):
        run("push", payload)
