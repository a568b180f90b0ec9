"""The GitHub adapter against the fake GitHub (real git underneath), and the fake's own honesty:
every body it serves validates against the official REST description, and its webhooks are
signed and shaped like GitHub's."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from mergebot.forge.base import CheckState, CommentKind, Permission, ReportState, RerunAnswer
from mergebot.forge.github import GitHubCredentials, GitHubForge
from mergebot.forge.render import render_report
from tests.fakegithub.fixtures import FAKE_TOKEN, WEBHOOK_SECRET
from tests.fakegithub.schemas import validate
from tests.fakegithub.server import HANDLERS, OWN_APP, FakeGitHub
from tests.gitutil import git
from tests.waiting import until

REPO = "acme/widgets"


class Receiver:
    """Stands in for mergebot's POST /webhook: checks each signature, keeps each delivery."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
            return web.Response(status=401)
        assert request.headers["X-GitHub-Delivery"]
        self.events.append((request.headers["X-GitHub-Event"], json.loads(body)))
        return web.Response(status=202)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/webhook"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def names(self) -> list[str]:
        return [
            f"{event}.{payload['action']}" if "action" in payload else event
            for event, payload in self.events
        ]


@pytest.fixture
async def receiver(fake_github: FakeGitHub) -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    fake_github.sender.url = receiver.url
    yield receiver
    await receiver.close()


@pytest.fixture
def forge(fake_github: FakeGitHub) -> GitHubForge:
    return GitHubForge(
        GitHubCredentials(token=FAKE_TOKEN),
        api_url=fake_github.api_url,
        seconds_between_writes=None,
    )


async def test_pull_request_life_sends_the_webhooks_github_sends(
    fake_github: FakeGitHub, receiver: Receiver
) -> None:
    repo = fake_github.add_repo(REPO)
    sha = repo.remote.branch_with("feature", "a.txt", "a\n")
    await fake_github.sync()
    number = await fake_github.open_pull(REPO, "feature", "bob")
    await fake_github.review(REPO, number, "alice")
    await fake_github.comment(REPO, number, "alice", "/mergebot status")
    newer = await fake_github.push(REPO, "feature", "a.txt", "a2\n")
    # Someone lands the head on main by hand: GitHub marks the pull request merged.
    git(repo.remote.work, "push", "-q", "origin", f"{newer}:refs/heads/main")
    await fake_github.sync()

    assert receiver.names() == [
        "push",
        "pull_request.opened",
        "pull_request_review.submitted",
        "issue_comment.created",
        "push",
        "pull_request.synchronize",
        "push",
        "pull_request.closed",
    ]
    events = dict(enumerate(receiver.events))
    assert events[0][1]["after"] == sha
    assert events[0][1]["created"] is True
    assert events[2][1]["review"]["state"] == "approved"
    assert events[2][1]["review"]["commit_id"] == sha
    assert events[3][1]["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")
    assert events[5][1]["pull_request"]["head"]["sha"] == newer
    closed = events[7][1]["pull_request"]
    assert (closed["merged"], closed["state"]) == (True, "closed")


async def test_the_adapter_reads_permissions_checks_and_files(
    fake_github: FakeGitHub, forge: GitHubForge
) -> None:
    repo = fake_github.add_repo(REPO)
    repo.permissions.update({"alice": "write", "eve": "read"})
    repo.remote.commit(".github/mergebot.toml", "grace_seconds = 1\n", "config")
    sha = repo.remote.push("main")
    await fake_github.complete_check(REPO, sha, "build", "failure")
    await fake_github.complete_check(REPO, sha, "build", "success")

    assert await forge.permission(REPO, "alice") is Permission.WRITE
    assert await forge.permission(REPO, "eve") is Permission.READ
    assert await forge.permission(REPO, "mallory") is Permission.NONE
    assert await forge.read_file(REPO, "main", ".github/mergebot.toml") == "grace_seconds = 1\n"
    assert await forge.read_file(REPO, "main", ".github/mergebot.toml") == "grace_seconds = 1\n"
    assert await forge.read_file(REPO, "main", "missing.toml") is None
    results = await forge.check_results(REPO, sha)
    assert [(r.name, r.state) for r in results] == [("build", CheckState.SUCCESS)]
    assert await forge.recent_check_names(REPO, "mergebot/integration/", 7) == {"build"}


async def test_the_adapter_reports_comments_and_lands(
    fake_github: FakeGitHub, forge: GitHubForge
) -> None:
    repo = fake_github.add_repo(REPO)
    sha = repo.remote.branch_with("feature", "a.txt", "a\n")
    await fake_github.sync()
    number = await fake_github.open_pull(REPO, "feature", "bob")
    slug = f"pr-{number}"

    await forge.report(render_report(REPO, slug, sha, ReportState.QUEUED, base="main", position=1))
    await forge.report(render_report(REPO, slug, sha, ReportState.MERGED, base="main",
                                     merged_sha=sha))  # fmt: skip
    (run,) = repo.check_runs.values()
    assert (run["name"], run["status"], run["conclusion"]) == ("mergebot", "completed", "success")
    assert run["output"]["title"] == f"Merged into main as {sha[:7]}"

    await forge.comment(REPO, slug, CommentKind.BLOCKED, "first")
    fresh = GitHubForge(GitHubCredentials(token=FAKE_TOKEN), api_url=fake_github.api_url,
                        seconds_between_writes=None)  # fmt: skip
    await fresh.comment(REPO, slug, CommentKind.BLOCKED, "second")  # finds it by its marker
    (comment,) = repo.comments[number]
    assert comment["body"].startswith("second")

    # Squash-like landing: a new commit on main that does not contain the head.
    repo.remote.checkout("main", "main")
    landed = repo.remote.commit("a.txt", "a\n", "squashed feature")
    repo.remote.push("main")
    await forge.landed(REPO, slug, sha, landed)
    assert repo.pulls[number].state == "closed"
    assert landed in repo.comments[number][-1]["body"]


async def test_check_runs_forbidden_falls_back_to_commit_statuses(
    fake_github: FakeGitHub, forge: GitHubForge
) -> None:
    repo = fake_github.add_repo(REPO)
    repo.check_runs_forbidden = True
    sha = repo.remote.rev("main")

    await forge.report(render_report(REPO, "pr-1", sha, ReportState.QUEUED, base="main",
                                     position=3))  # fmt: skip

    (status,) = repo.statuses[sha]
    assert (status["context"], status["state"]) == ("mergebot", "pending")
    assert status["description"] == "Queued at position 3 for main"


async def test_ref_update_is_fast_forward_only(fake_github: FakeGitHub, forge: GitHubForge) -> None:
    repo = fake_github.add_repo(REPO)
    main = repo.remote.rev("main")
    ahead = repo.remote.branch_with("next", "n.txt", "n\n")
    side = repo.remote.branch_with("side", "s.txt", "s\n")
    await fake_github.sync()

    assert await forge.update_base(REPO, "main", main, ahead) is True
    assert repo.remote.rev("main") == ahead
    assert await forge.update_base(REPO, "main", ahead, side) is False  # 422, not a fast-forward
    assert repo.remote.rev("main") == ahead


async def test_a_re_run_actions_job_is_a_new_check_run_the_forge_reads_as_the_result(
    fake_github: FakeGitHub, forge: GitHubForge
) -> None:
    """GitHub re-runs a job as a new attempt: a new job, whose check run (new id, new link) is
    the latest of its name on the commit; the failed attempt stays as it was."""
    repo = fake_github.add_repo(REPO)
    sha = repo.remote.branch_with("feature", "a.txt", "a\n")
    await fake_github.sync()
    failed = await fake_github.complete_check(REPO, sha, "build", "failure")
    repo.ci_on_rerequest = {"build": "success"}

    assert await forge.rerun_checks(REPO, sha, ["build"]) == RerunAnswer(started=["build"])

    async def latest() -> tuple[CheckState, str | None]:
        (result,) = [r for r in await forge.check_results(REPO, sha) if r.name == "build"]
        return result.state, result.url

    async def passed() -> bool:
        return (await latest())[0] is CheckState.SUCCESS

    await until(passed, "the re-run job's check run completed")  # the runner finishes it
    assert (await latest())[1] != failed["html_url"]
    assert repo.check_runs[failed["id"]]["conclusion"] == "failure"

    repo.refuse_job_rerun = "Resource not accessible by integration"
    assert await forge.rerun_checks(REPO, sha, ["build"]) == RerunAnswer()  # 403: refused


async def test_no_job_of_a_workflow_run_that_still_runs_is_re_run(
    fake_github: FakeGitHub, forge: GitHubForge
) -> None:
    """A push starts one workflow run with a job per CI check; while a job of it has not
    finished, GitHub answers a re-run of any of its jobs with its documented 403."""
    repo = fake_github.add_repo(REPO)
    repo.ci = {"build": "failure", "e2e": "success"}
    repo.ci_running = {"e2e"}
    repo.ci_on_rerequest = {"build": "success"}
    repo.remote.branch_with("mergebot/integration/pr-1", "a.txt", "a\n")
    await fake_github.sync()
    sha = repo.refs["refs/heads/mergebot/integration/pr-1"]
    states = {r.name: r.state for r in await forge.check_results(REPO, sha)}
    assert states == {"build": CheckState.FAILURE, "e2e": CheckState.PENDING}

    assert await forge.rerun_checks(REPO, sha, ["build"]) == RerunAnswer(busy=["build"])
    refused = [s for s in fake_github.served if s.op_id == "actions/re-run-job-for-workflow-run"]
    assert [(s.status, s.body["message"], s.body["status"]) for s in refused] == [
        (403, "The workflow run containing this job is already running", "403")
    ]

    assert await fake_github.finish_checks(REPO) == 1  # the workflow run is done
    assert await forge.rerun_checks(REPO, sha, ["build"]) == RerunAnswer(started=["build"])


async def test_every_operation_served_is_documented_and_matches_its_schema(
    fake_github: FakeGitHub, forge: GitHubForge
) -> None:
    """Exercise every operation the fake implements through PyGithub, then validate all."""
    repo = fake_github.add_repo(REPO)
    repo.permissions["alice"] = "admin"
    sha = repo.remote.branch_with("feature", "a.txt", "a\n")
    await fake_github.sync()
    number = await fake_github.open_pull(REPO, "feature", "bob")
    await fake_github.review(REPO, number, "alice")
    await fake_github.complete_check(REPO, sha, "build")  # a GitHub Actions job
    repo.ci_app = OWN_APP
    await fake_github.complete_check(REPO, sha, "lint")  # the app's own check run
    main = repo.remote.rev("main")

    await forge.permission(REPO, "alice")
    await forge.check_results(REPO, sha)
    answer = await forge.rerun_checks(REPO, sha, ["build", "lint"])
    assert answer == RerunAnswer(started=["build", "lint"])
    await forge.recent_check_names(REPO, "feat", 7)
    await forge.read_file(REPO, "main", "README.md")
    await forge.report(render_report(REPO, f"pr-{number}", sha, ReportState.QUEUED, base="main",
                                     position=1))  # fmt: skip
    await forge.report(render_report(REPO, f"pr-{number}", sha, ReportState.INTEGRATING,
                                     base="main", integration_sha=None, checks=[]))  # fmt: skip
    await forge.comment(REPO, f"pr-{number}", CommentKind.STATUS, "one")
    await forge.comment(REPO, f"pr-{number}", CommentKind.STATUS, "two")
    await forge.landed(REPO, f"pr-{number}", sha, main)
    await forge.update_base(REPO, "main", main, sha)
    repo.check_runs_forbidden = True
    forge._no_check_runs.add(REPO)
    await forge.report(render_report(REPO, f"pr-{number}", sha, ReportState.MERGED, base="main",
                                     merged_sha=sha))  # fmt: skip
    # The reads reconciliation makes (PyGithub blocks: off the loop that serves the fake).
    gh = forge._repo(REPO)
    open_pulls = await asyncio.to_thread(lambda: [p.number for p in gh.get_pulls(state="open")])
    assert open_pulls == []  # closed by `landed`
    reviews = await asyncio.to_thread(lambda: [r.state for r in gh.get_pull(number).get_reviews()])
    assert reviews == ["APPROVED"]

    served = {s.op_id for s in fake_github.served}
    assert served == set(HANDLERS)
    for item in fake_github.served:
        validate(item.op_id, item.status, item.body)
