"""The PyGithub adapter against GitHub's HTTP answers (recorded shapes, served by `responses`).

PyGithub writes an explicit port into its URLs, hence `:443` in every registered URL.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mergebot.forge.base import CheckState, CommentKind, Permission, ReportState, RerunAnswer
from mergebot.forge.errors import RateLimitedError, WriteOutcomeUnknownError
from mergebot.forge.github import GitHubCredentials, GitHubForge, marker
from mergebot.forge.render import render_report
from mergebot.notify.view import Links, followup_context
from tests import notify_data
from tests.fakegithub import bodies

API = "https://api.github.com"
HOST = "https://api.github.com:443"
REPO = "acme/widgets"
R = f"{HOST}/repos/{REPO}"
SHA = "a" * 40
MAIN = "b" * 40
NEW = "c" * 40
TOKEN = "ghp_s3cr3tTokenValue000000000000000000"


class Sleeps:
    """Stands in for asyncio.sleep: records the waits the adapter asked for, waits for nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def forge(sleeps: Sleeps, clock: Clock) -> GitHubForge:
    return GitHubForge(
        GitHubCredentials(token=TOKEN),
        api_url=API,
        seconds_between_writes=None,
        sleep=sleeps,
        clock=clock,
    )


@pytest.fixture
def http() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def calls(http: Any, method: str, pattern: str) -> list[Any]:
    return [
        c
        for c in http.calls
        if c.request.method == method and re.search(pattern, c.request.url or "")
    ]


def report(state: ReportState, **context: Any) -> Any:
    return render_report(REPO, "pr-7", SHA, state, base="main", **context)


# -- GitHub App authentication ----------------------------------------------------------------
def _private_key() -> tuple[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


async def test_app_installation_token_is_minted_then_renewed_before_it_expires(
    http: Any, sleeps: Sleeps
) -> None:
    pem, public_key = _private_key()
    forge = GitHubForge(
        GitHubCredentials(app_id=4242, private_key=pem),
        api_url=API,
        seconds_between_writes=None,
        sleep=sleeps,
    )
    http.get(f"{R}/installation", json=bodies.installation(API, 77, "acme"))
    soon = (datetime.now(UTC) + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tokens = f"{HOST}/app/installations/77/access_tokens"
    # The first token is already inside PyGithub's renewal margin: the next call renews it.
    http.post(tokens, json=bodies.installation_token("ghs_first", soon), status=201)
    http.post(tokens, json=bodies.installation_token("ghs_second", later), status=201)
    for user in ("alice", "bob", "carol"):
        http.get(
            f"{R}/collaborators/{user}/permission",
            json=bodies.permission(API, user, "write"),
        )

    assert await forge.permission(REPO, "alice") is Permission.WRITE
    assert await forge.permission(REPO, "bob") is Permission.WRITE
    assert await forge.permission(REPO, "carol") is Permission.WRITE

    minted = calls(http, "POST", "/access_tokens$")
    assert len(minted) == 2
    assert len(calls(http, "GET", "/installation$")) == 1
    # Minting is authenticated with a JWT the App's key signed, issued for the App id.
    bearer = minted[0].request.headers["Authorization"]
    assert bearer.startswith("Bearer ")
    claims = jwt.decode(bearer.removeprefix("Bearer "), public_key, algorithms=["RS256"])
    assert claims["iss"] == "4242"
    used = [c.request.headers["Authorization"] for c in calls(http, "GET", "/permission$")]
    assert used == ["token ghs_first", "token ghs_second", "token ghs_second"]


def test_credentials_are_required_and_never_printed() -> None:
    with pytest.raises(Exception, match="MERGEBOT_GITHUB_TOKEN"):
        GitHubCredentials()
    assert TOKEN not in repr(GitHubCredentials(token=TOKEN))


# -- rate limits and retries ------------------------------------------------------------------
async def test_secondary_rate_limit_403_waits_retry_after_then_succeeds(
    http: Any, forge: GitHubForge, sleeps: Sleeps
) -> None:
    url = f"{R}/collaborators/alice/permission"
    http.get(
        url,
        status=403,
        json=bodies.error("You have exceeded a secondary rate limit. Please wait a few minutes "
                          "before you try again."),
        headers={"Retry-After": "3"},
    )  # fmt: skip
    http.get(url, json=bodies.permission(API, "alice", "admin"))

    assert await forge.permission(REPO, "alice") is Permission.ADMIN
    assert sleeps.waits == [3.0]
    assert len(calls(http, "GET", "/permission$")) == 2


async def test_secondary_rate_limit_on_a_write_is_sent_again_because_it_was_not_applied(
    http: Any, forge: GitHubForge, sleeps: Sleeps
) -> None:
    http.get(f"{HOST}/user", json=bodies.private_user(API, "mergebot-bot"))
    http.get(f"{R}/issues/7/comments", json=[])
    url = f"{R}/issues/7/comments"
    http.post(
        url,
        status=403,
        json=bodies.error("You have exceeded a secondary rate limit and have been temporarily "
                          "blocked from content creation. Please retry your request again later."),
    )  # fmt: skip
    http.post(url, status=201, json=bodies.issue_comment(API, REPO, 7, 5, login="x", body="b"))

    await forge.comment(REPO, "pr-7", CommentKind.REFUSED, "no")

    assert sleeps.waits == [60.0]  # no Retry-After: GitHub asks for at least a minute
    assert len(calls(http, "POST", "/comments$")) == 2


async def test_primary_rate_limit_waits_until_the_reset(
    http: Any, forge: GitHubForge, sleeps: Sleeps, clock: Clock
) -> None:
    url = f"{R}/collaborators/alice/permission"
    reset = int(clock.now) + 42
    http.get(
        url,
        status=403,
        json=bodies.error("API rate limit exceeded for installation ID 77."),
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
    )
    http.get(url, json=bodies.permission(API, "alice", "read"))

    assert await forge.permission(REPO, "alice") is Permission.READ
    assert sleeps.waits == [43.0]


async def test_a_rate_limit_longer_than_the_bound_is_reported_not_waited(
    http: Any, forge: GitHubForge, sleeps: Sleeps
) -> None:
    http.get(
        f"{R}/collaborators/alice/permission",
        status=429,
        json=bodies.error("Too many requests"),
        headers={"Retry-After": "3600"},
    )
    with pytest.raises(RateLimitedError) as info:
        await forge.permission(REPO, "alice")
    assert info.value.retry_after == 3600
    assert sleeps.waits == []


async def test_a_5xx_on_a_write_is_not_sent_again(
    http: Any, forge: GitHubForge, sleeps: Sleeps
) -> None:
    http.get(f"{R}/commits/{SHA}/check-runs", json=bodies.check_runs([]))
    http.post(f"{R}/check-runs", status=502, json=bodies.error("Server Error"))

    with pytest.raises(WriteOutcomeUnknownError, match="not sent again"):
        await forge.report(report(ReportState.QUEUED, position=1))

    assert len(calls(http, "POST", "/check-runs$")) == 1
    assert sleeps.waits == []


async def test_a_5xx_on_a_read_is_retried_with_backoff(
    http: Any, forge: GitHubForge, sleeps: Sleeps
) -> None:
    url = f"{R}/collaborators/alice/permission"
    http.get(url, status=502, json=bodies.error("Server Error"))
    http.get(url, status=503, json=bodies.error("Service Unavailable"))
    http.get(url, json=bodies.permission(API, "alice", "maintain"))

    assert await forge.permission(REPO, "alice") is Permission.MAINTAIN
    assert sleeps.waits == [0.5, 1.0]


async def test_non_fast_forward_ref_update_answers_false(http: Any, forge: GitHubForge) -> None:
    http.get(f"{R}/git/ref/heads/main", json=bodies.git_ref(API, REPO, "refs/heads/main", MAIN))
    http.patch(
        f"{R}/git/refs/heads/main",
        status=422,
        json=bodies.error("Update is not a fast forward"),
    )

    assert await forge.update_base(REPO, "main", MAIN, NEW) is False

    (patch,) = calls(http, "PATCH", "/git/refs/heads/main$")
    assert json.loads(patch.request.body) == {"sha": NEW, "force": False}


async def test_ref_update_refuses_when_base_moved_and_succeeds_from_the_seen_sha(
    http: Any, forge: GitHubForge
) -> None:
    http.get(f"{R}/git/ref/heads/main", json=bodies.git_ref(API, REPO, "refs/heads/main", NEW))
    assert await forge.update_base(REPO, "main", MAIN, SHA) is False
    assert calls(http, "PATCH", "/git/refs/") == []

    http.replace(
        responses.GET,
        f"{R}/git/ref/heads/main",
        json=bodies.git_ref(API, REPO, "refs/heads/main", MAIN),
    )
    http.patch(f"{R}/git/refs/heads/main", json=bodies.git_ref(API, REPO, "refs/heads/main", NEW))
    assert await forge.update_base(REPO, "main", MAIN, NEW) is True


# -- permissions ------------------------------------------------------------------------------
async def test_permission_is_cached_briefly(http: Any, forge: GitHubForge, clock: Clock) -> None:
    url = f"{R}/collaborators/alice/permission"
    http.get(url, json=bodies.permission(API, "alice", "write"))

    assert await forge.permission(REPO, "alice") is Permission.WRITE
    assert await forge.permission(REPO, "Alice") is Permission.WRITE
    assert len(calls(http, "GET", "/permission$")) == 1

    clock.now += forge.permission_ttl + 1
    http.replace(responses.GET, url, json=bodies.permission(API, "alice", "read"))
    assert await forge.permission(REPO, "alice") is Permission.READ
    assert len(calls(http, "GET", "/permission$")) == 2


async def test_unknown_user_has_no_permission(http: Any, forge: GitHubForge) -> None:
    http.get(f"{R}/collaborators/ghost/permission", status=404, json=bodies.error("Not Found"))
    assert await forge.permission(REPO, "ghost") is Permission.NONE


# -- check results --------------------------------------------------------------------------
async def test_check_results_merge_statuses_and_latest_check_runs(
    http: Any, forge: GitHubForge
) -> None:
    http.get(
        f"{R}/commits/{SHA}/status",
        json=bodies.combined_status(API, REPO, SHA, [
            bodies.simple_status(API, REPO, 1, context="ci/jenkins", state="failure",
                                 target_url="https://ci.example.com/1", description="2 failed"),
            bodies.simple_status(API, REPO, 2, context="lint", state="pending"),
        ]),
    )  # fmt: skip
    http.get(
        f"{R}/commits/{SHA}/check-runs",
        json=bodies.check_runs([
            bodies.check_run(API, REPO, 10, name="build", head_sha=SHA, status="completed",
                             conclusion="failure", completed_at=bodies.WHEN),
            bodies.check_run(API, REPO, 11, name="build", head_sha=SHA, status="completed",
                             conclusion="success", completed_at=bodies.WHEN, title="ok"),
            bodies.check_run(API, REPO, 12, name="docs", head_sha=SHA, status="completed",
                             conclusion="skipped", completed_at=bodies.WHEN),
            bodies.check_run(API, REPO, 13, name="e2e", head_sha=SHA, status="in_progress",
                             conclusion=None),
        ]),
    )  # fmt: skip

    results = {r.name: r for r in await forge.check_results(REPO, SHA)}

    assert {n: r.state for n, r in results.items()} == {
        "ci/jenkins": CheckState.FAILURE,
        "lint": CheckState.PENDING,
        "build": CheckState.SUCCESS,  # the re-run (newest id) wins
        "docs": CheckState.SUCCESS,  # skipped counts as passing, as on GitHub
        "e2e": CheckState.PENDING,
    }
    assert results["ci/jenkins"].url == "https://ci.example.com/1"
    assert results["ci/jenkins"].summary == "2 failed"
    assert results["build"].url == "https://github.com/acme/widgets/runs/11"


ACTIONS = "github-actions"


def serve_failed_runs(http: Any, *runs: tuple[int, str, str]) -> None:
    """GitHub's list of the check runs on SHA: each (id, name, app slug), failed."""
    http.get(
        f"{R}/commits/{SHA}/check-runs",
        json=bodies.check_runs([
            bodies.check_run(API, REPO, run_id, name=name, head_sha=SHA, status="completed",
                             conclusion="failure", completed_at=bodies.WHEN, app_slug=app)
            for run_id, name, app in runs
        ]),
    )  # fmt: skip


async def test_rerun_rerequests_the_latest_check_run_of_each_failed_name(
    http: Any, forge: GitHubForge
) -> None:
    """A check run of another app (not Actions) goes through the Checks API's re-request."""
    serve_failed_runs(http, (10, "build", "buildkite"), (11, "build", "buildkite"))
    http.post(f"{R}/check-runs/11/rerequest", status=201, json={})

    # A commit status (ci/jenkins) has no re-run: it is left out of the answer.
    answer = await forge.rerun_checks(REPO, SHA, ["build", "ci/jenkins"])
    assert answer == RerunAnswer(started=["build"])
    assert len(calls(http, "POST", r"/check-runs/\d+/rerequest$")) == 1
    assert len(calls(http, "POST", r"/check-runs/11/rerequest$")) == 1
    assert calls(http, "POST", r"/actions/") == []


async def test_rerun_of_a_github_actions_check_re_runs_its_job(
    http: Any, forge: GitHubForge
) -> None:
    """GitHub refuses to re-request another app's check run; an Actions check run's id is its
    job id, and the job is re-run through the Actions API (201, empty body)."""
    serve_failed_runs(http, (21, "test", ACTIONS), (22, "lint", "buildkite"))
    http.post(f"{R}/actions/jobs/21/rerun", status=201, json={})
    http.post(f"{R}/check-runs/22/rerequest", status=201, json={})

    answer = await forge.rerun_checks(REPO, SHA, ["test", "lint"])
    assert answer == RerunAnswer(started=["test", "lint"])
    assert len(calls(http, "POST", r"/actions/jobs/21/rerun$")) == 1
    assert len(calls(http, "POST", r"/check-runs/22/rerequest$")) == 1
    assert calls(http, "POST", r"/check-runs/21/") == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (403, "Resource not accessible by integration"),
        (404, "Not Found"),
        (422, "Unprocessable Entity"),
    ],
)
async def test_a_re_run_github_refuses_is_left_out_and_logged(
    http: Any, forge: GitHubForge, caplog: pytest.LogCaptureFixture, status: int, message: str
) -> None:
    serve_failed_runs(http, (31, "test", ACTIONS), (32, "e2e", ACTIONS))
    http.post(f"{R}/actions/jobs/31/rerun", status=status, json=bodies.error(message))
    http.post(f"{R}/actions/jobs/32/rerun", status=201, json={})

    with caplog.at_level(logging.WARNING, "mergebot.forge.github"):
        answer = await forge.rerun_checks(REPO, SHA, ["test", "e2e"])
    assert answer == RerunAnswer(started=["e2e"])
    [line] = [r.getMessage() for r in caplog.records if "check_rerun_refused" in r.getMessage()]
    assert "check=test" in line
    assert f"HTTP {status}: {message}" in line
    assert len(calls(http, "POST", r"/actions/jobs/31/rerun$")) == 1  # a refusal is final


async def test_a_job_whose_workflow_run_still_runs_is_answered_not_yet(
    http: Any, forge: GitHubForge, caplog: pytest.LogCaptureFixture
) -> None:
    """GitHub's 403 for a job of a workflow run that has not finished only means "not yet":
    the name is answered `busy`, not refused."""
    serve_failed_runs(http, (41, "test", ACTIONS))
    doc = "https://docs.github.com/rest/actions/workflow-runs#re-run-a-job-from-a-workflow-run"
    http.post(
        f"{R}/actions/jobs/41/rerun",
        status=403,
        json=bodies.error("The workflow run containing this job is already running", doc, "403"),
    )

    with caplog.at_level(logging.INFO, "mergebot.forge.github"):
        assert await forge.rerun_checks(REPO, SHA, ["test"]) == RerunAnswer(busy=["test"])
    assert not [r for r in caplog.records if "check_rerun_refused" in r.getMessage()]
    assert [r for r in caplog.records if "check_rerun_not_yet" in r.getMessage()]


async def test_recent_check_names_cover_integration_branches_and_base(
    http: Any, forge: GitHubForge
) -> None:
    http.get(
        f"{R}/git/matching-refs/heads%2Fmergebot%2Fintegration%2F",
        json=[bodies.git_ref(API, REPO, "refs/heads/mergebot/integration/pr-1", SHA)],
    )
    http.get(f"{R}/commits", json=[bodies.commit(API, REPO, MAIN, parents=[])])
    for sha, name in ((SHA, "build"), (MAIN, "test")):
        http.get(
            f"{R}/commits/{sha}/check-runs",
            json=bodies.check_runs([bodies.check_run(API, REPO, 1, name=name, head_sha=sha,
                                                     status="queued", conclusion=None)]),
        )  # fmt: skip
        http.get(f"{R}/commits/{sha}/status", json=bodies.combined_status(API, REPO, sha, []))

    names = await forge.recent_check_names(REPO, "mergebot/integration/", days=7)

    assert names == {"build", "test"}
    (listing,) = calls(http, "GET", "/commits\\?")
    assert "since=" in (listing.request.url or "")


# -- files ------------------------------------------------------------------------------------
async def test_read_file_decodes_and_asks_again_conditionally(
    http: Any, forge: GitHubForge
) -> None:
    url = f"{R}/contents/.github/mergebot.toml"
    body = bodies.content_file(API, REPO, ".github/mergebot.toml", "main", b"grace_seconds = 3\n")
    http.get(url, json=body, headers={"ETag": '"abc"'})
    assert await forge.read_file(REPO, "main", ".github/mergebot.toml") == "grace_seconds = 3\n"

    http.replace(responses.GET, url, status=304, body=b"")
    assert await forge.read_file(REPO, "main", ".github/mergebot.toml") == "grace_seconds = 3\n"
    second = calls(http, "GET", "/contents/")[1]
    assert second.request.headers["If-None-Match"] == '"abc"'
    assert "ref=main" in (second.request.url or "")


async def test_read_file_answers_none_when_missing(http: Any, forge: GitHubForge) -> None:
    http.get(f"{R}/contents/.github/mergebot.toml", status=404, json=bodies.error("Not Found"))
    assert await forge.read_file(REPO, "main", ".github/mergebot.toml") is None


# -- reporting --------------------------------------------------------------------------------
async def test_report_creates_then_updates_one_check_run(http: Any, forge: GitHubForge) -> None:
    http.get(f"{R}/commits/{SHA}/check-runs", json=bodies.check_runs([]))
    http.post(
        f"{R}/check-runs",
        status=201,
        json=bodies.check_run(API, REPO, 99, name="mergebot", head_sha=SHA, status="queued",
                              conclusion=None),
    )  # fmt: skip
    http.patch(
        f"{R}/check-runs/99",
        json=bodies.check_run(API, REPO, 99, name="mergebot", head_sha=SHA, status="completed",
                              conclusion="success", completed_at=bodies.WHEN),
    )  # fmt: skip

    await forge.report(report(ReportState.QUEUED, position=2))
    await forge.report(report(ReportState.MERGED, merged_sha=NEW))

    (create,) = calls(http, "POST", "/check-runs$")
    sent = json.loads(create.request.body)
    assert sent["name"] == "mergebot"
    assert sent["head_sha"] == SHA
    assert sent["status"] == "queued"
    assert sent["output"]["title"] == "Queued at position 2 for main"
    (update,) = calls(http, "PATCH", "/check-runs/99$")
    sent = json.loads(update.request.body)
    assert (sent["status"], sent["conclusion"]) == ("completed", "success")
    assert sent["output"]["title"] == f"Merged into main as {NEW[:7]}"
    assert NEW in sent["output"]["summary"]


async def test_report_falls_back_to_a_commit_status_without_check_run_permission(
    http: Any, forge: GitHubForge, caplog: pytest.LogCaptureFixture
) -> None:
    http.get(f"{R}/commits/{SHA}/check-runs", json=bodies.check_runs([]))
    http.post(
        f"{R}/check-runs", status=403, json=bodies.error("Resource not accessible by integration")
    )
    http.post(
        f"{R}/statuses/{SHA}",
        status=201,
        json=bodies.status(API, REPO, 5, context="mergebot", state="pending"),
    )
    caplog.set_level(logging.DEBUG)

    await forge.report(report(ReportState.INTEGRATING, integration_sha=NEW, checks=[]))
    blocked = notify_data.followup().model_copy(update={"repo": REPO, "slug": "pr-7"})
    todo = followup_context(blocked, Links("https://mergebot.example.com"))
    await forge.report(report(ReportState.BLOCKED, followup=todo))

    assert len(calls(http, "POST", "/check-runs$")) == 1  # not tried again for this repo
    first, second = (json.loads(c.request.body) for c in calls(http, "POST", "/statuses/"))
    assert first["context"] == "mergebot"
    assert first["state"] == "pending"
    assert first["description"].startswith("Integrating into main")
    assert second["state"] == "failure"
    assert second["description"] == "Blocked: merge conflict"
    assert TOKEN not in caplog.text


# -- comments ---------------------------------------------------------------------------------
async def test_comment_is_created_once_then_edited_in_place(http: Any, forge: GitHubForge) -> None:
    http.get(f"{HOST}/user", json=bodies.private_user(API, "mergebot-bot"))
    impostor = bodies.issue_comment(
        API, REPO, 7, 3, login="mallory", body=f"fake\n{marker(CommentKind.BLOCKED)}"
    )
    ours = bodies.issue_comment(
        API, REPO, 7, 4, login="mergebot-bot", body=f"old\n\n{marker(CommentKind.BLOCKED)}"
    )
    http.get(f"{R}/issues/7/comments", json=[impostor, ours])
    http.patch(f"{R}/issues/comments/4", json=ours)

    await forge.comment(REPO, "pr-7", CommentKind.BLOCKED, "blocked again")
    await forge.comment(REPO, "pr-7", CommentKind.BLOCKED, "blocked once more")

    assert calls(http, "POST", "/comments") == []
    edits = calls(http, "PATCH", "/issues/comments/")
    assert [e.request.url.rsplit("/", 1)[1] for e in edits] == ["4", "4"]
    assert json.loads(edits[1].request.body)["body"] == (
        f"blocked once more\n\n{marker(CommentKind.BLOCKED)}"
    )
    assert len(calls(http, "GET", "/issues/7/comments")) == 1


async def test_comment_on_a_slug_that_is_not_a_pull_request_does_nothing(
    http: Any, forge: GitHubForge
) -> None:
    await forge.comment(REPO, "agent-task-9", CommentKind.BLOCKED, "x")
    assert list(http.calls) == []


# -- landing ----------------------------------------------------------------------------------
def _compare(status: str) -> dict[str, Any]:
    head = bodies.commit(API, REPO, SHA, parents=[MAIN])
    landed = bodies.commit(API, REPO, NEW, parents=[MAIN])
    return bodies.comparison(
        API, REPO, head, bodies.commit(API, REPO, MAIN, parents=[]), status=status,
        ahead_by=1, behind_by=1 if status == "diverged" else 0, commits=[landed],
    )  # fmt: skip


def _pull(state: str = "open") -> dict[str, Any]:
    return bodies.pull(API, REPO, 7, author="bob", head_ref="feature", head_sha=SHA,
                       base_ref="main", base_sha=MAIN, state=state)  # fmt: skip


async def test_landed_by_merge_commit_leaves_the_pull_request_to_github(
    http: Any, forge: GitHubForge
) -> None:
    http.get(f"{R}/compare/{SHA}...{NEW}", json=_compare("ahead"))
    http.get(f"{R}/pulls/7", json=_pull())

    await forge.landed(REPO, "pr-7", SHA, NEW)

    assert [c.request.method for c in http.calls] == ["GET", "GET"]


async def test_landed_by_squash_closes_the_pull_request_with_a_link(
    http: Any, forge: GitHubForge
) -> None:
    http.get(f"{R}/compare/{SHA}...{NEW}", json=_compare("diverged"))
    http.get(f"{R}/pulls/7", json=_pull())
    http.get(f"{HOST}/user", json=bodies.private_user(API, "mergebot-bot"))
    http.get(f"{R}/issues/7/comments", json=[])
    http.post(
        f"{R}/issues/7/comments",
        status=201,
        json=bodies.issue_comment(API, REPO, 7, 8, login="mergebot-bot", body="x"),
    )
    http.patch(f"{R}/pulls/7", json=_pull("closed"))

    await forge.landed(REPO, "pr-7", SHA, NEW)

    (comment,) = calls(http, "POST", "/issues/7/comments$")
    assert NEW in json.loads(comment.request.body)["body"]
    (close,) = calls(http, "PATCH", "/pulls/7$")
    assert json.loads(close.request.body) == {"state": "closed"}
