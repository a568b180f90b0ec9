"""mergebot end to end on a fake GitHub: people act on pull requests (pushes, reviews, comments),
signed webhooks drive mergebot's web tier, its processor, integrator, command worker and reporter
run as in `mergebot serve`, it moves `main` of a real bare repository, and shows what happened
through the real PyGithub adapter. Only GitHub's HTTP is faked."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mergebot.config import ServerConfig
from mergebot.runtime import Runtime
from mergebot.store.connection import RedisClient
from mergebot.store.flaky import FlakyLog
from mergebot.store.keys import Keys
from tests import waiting
from tests.fakegithub import server as fake_server
from tests.fakegithub.harness import mergebot_for, settings_for
from tests.fakegithub.server import FakeGitHub, FakeRepo
from tests.gitutil import git

# Whole stories through the fake GitHub: a generous deadline, polled gently.
until = functools.partial(waiting.until, timeout=30, interval=0.05)

REPO = "acme/widgets"
pytestmark = pytest.mark.slow


@dataclass
class World:
    fake: FakeGitHub
    repo: FakeRepo
    runtime: Runtime
    monkeypatch: pytest.MonkeyPatch

    def stamp_in(self, stamp: str | datetime) -> None:
        """From now on the fake GitHub stamps everything with the second of `stamp`: GitHub
        stamps to the second, so a person's next action can share the previous one's."""
        when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp
        frozen = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.monkeypatch.setattr(fake_server, "now", lambda: frozen)

    async def blocked_at(self, number: int) -> datetime:
        async for entry in self.runtime.eventlog.replay(repo=REPO):
            payload = entry.envelope.payload
            if entry.envelope.name == "integration_blocked" and payload["slug"] == f"pr-{number}":
                return datetime.fromisoformat(str(payload["blocked_at"]))
        raise AssertionError(f"no integration_blocked for pr-{number}")

    def main(self) -> str:
        return self.repo.remote.rev("main")

    def on_main(self, sha: str) -> bool:
        result = git(self.repo.bare, "branch", "--contains", sha, "--format=%(refname:short)")
        return "main" in result.split()

    def check_run(self, sha: str) -> dict[str, Any] | None:
        runs = [
            r for r in self.repo.check_runs.values()
            if r["head_sha"] == sha and r["name"] == "mergebot"
        ]  # fmt: skip
        return max(runs, key=lambda r: int(r["id"])) if runs else None

    def check_title(self, sha: str) -> str:
        run = self.check_run(sha)
        return str(run["output"]["title"]) if run else ""

    def comments(self, number: int, kind: str) -> list[dict[str, Any]]:
        marker = f"<!-- mergebot:{kind} -->"
        return [c for c in self.repo.comments.get(number, []) if marker in (c["body"] or "")]

    async def open(
        self, branch: str, path: str, content: str, author: str = "bob"
    ) -> tuple[int, str]:
        sha = self.repo.remote.branch_with(branch, path, content)
        await self.fake.sync()
        return await self.fake.open_pull(REPO, branch, author), sha


def server_config(repo: FakeRepo, **table: Any) -> ServerConfig:
    return ServerConfig(
        {}, {REPO: {"forge": "github", "remote": str(repo.bare), "grace_seconds": 0.2, **table}}
    )


@pytest.fixture
def world_factory(
    fake_github: FakeGitHub,
    redis: RedisClient,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def make(**table: Any) -> AsyncIterator[World]:
        repo = fake_github.add_repo(REPO)
        repo.permissions.update({"alice": "write", "bob": "write", "carol": "maintain",
                                 "eve": "read"})  # fmt: skip
        # Check commands run as the test's own user, unsandboxed, as in every in-process test:
        # they wait on files in pytest's private tmp dir.
        settings = settings_for(fake_github, tmp_path / "data", check_user=str(os.geteuid()),
                                check_sandbox="none")  # fmt: skip
        async with mergebot_for(
            fake_github, redis, keys, server_config(repo, **table), settings, services=True
        ) as runtime:
            yield World(fake_github, repo, runtime, monkeypatch)

    return make


async def test_approved_pull_request_is_merged_and_its_check_run_says_so(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory() as w:
        before = w.main()
        number, sha = await w.open("feature/one", "one.txt", "one\n")
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.on_main(sha), "the approved head on main")
        await until(lambda: w.check_title(sha).startswith("Merged into main"), "merged check run")

        main = w.main()
        assert git(w.repo.bare, "rev-list", "--first-parent", f"{before}..main").split() == [main]
        assert w.repo.remote.parents(main) == [before, sha]  # a merge commit of exactly the head
        run = w.check_run(sha)
        assert run is not None
        assert (run["status"], run["conclusion"]) == ("completed", "success")
        assert run["output"]["title"] == f"Merged into main as {main[:7]}"
        await until(lambda: w.repo.pulls[number].merged, "GitHub showing the pull request merged")
        assert w.comments(number, "blocked") == []


async def test_a_push_after_approval_supersedes_the_approved_sha(
    world_factory: Callable[..., Any],
) -> None:
    # The first candidate's integration waits for a "build" check, so the second one waits in
    # the queue, approved, while its author pushes again.
    async with world_factory(checks={"required": ["build"], "timeout_seconds": 60}) as w:
        first, first_sha = await w.open("feature/first", "first.txt", "1\n")
        await w.fake.review(REPO, first, "alice")
        await until(lambda: w.check_title(first_sha).startswith("Integrating"), "first integrating")
        second, old = await w.open("feature/second", "second.txt", "2\n")
        await w.fake.review(REPO, second, "alice")
        await until(lambda: w.check_title(old).startswith("Queued"), "second queued")

        # The author pushes again within the second of the pull request's last update.
        last_update = w.repo.pulls[second].updated_at
        w.stamp_in(last_update)
        new = await w.fake.push(REPO, "feature/second", "second.txt", "2 again\n")
        assert w.repo.pulls[second].updated_at == last_update  # both heads: one second

        await until(lambda: w.check_title(old) == "Superseded by a newer push", "old superseded")
        integration = next(
            sha for name, sha in w.repo.refs.items() if name.startswith("refs/heads/mergebot/")
        )
        await w.fake.complete_check(REPO, integration, "build", "success")
        await until(lambda: w.on_main(first_sha), "the first candidate on main")
        main_after_first = w.main()
        # The new head has no approval of its own: nothing more lands.
        assert not w.on_main(old)
        assert not w.on_main(new)
        assert w.main() == main_after_first
        run = w.check_run(old)
        assert run is not None
        assert run["conclusion"] == "neutral"


async def test_merge_command_by_a_writer_merges(world_factory: Callable[..., Any]) -> None:
    async with world_factory() as w:
        number, sha = await w.open("feature/cmd", "cmd.txt", "cmd\n")
        await w.fake.comment(REPO, number, "carol", "/mergebot merge")

        await until(lambda: w.on_main(sha), "the head merged after /mergebot merge")
        await until(lambda: w.check_title(sha).startswith("Merged into main"), "merged check run")


async def test_merge_command_by_a_reader_is_refused(world_factory: Callable[..., Any]) -> None:
    async with world_factory() as w:
        before = w.main()
        number, sha = await w.open("feature/cmd", "cmd.txt", "cmd\n")
        await w.fake.comment(REPO, number, "eve", "/mergebot merge")

        await until(lambda: w.comments(number, "refused"), "the refusal comment")
        (refusal,) = w.comments(number, "refused")
        assert "eve" in refusal["body"]
        approvals = [
            e.envelope async for e in w.runtime.eventlog.replay(repo=REPO)
            if e.envelope.name == "review_approved"
        ]  # fmt: skip
        assert approvals == []
        assert w.main() == before
        assert w.check_run(sha) is None


async def test_conflict_blocks_with_a_follow_up_then_a_fix_and_resume_merge(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory() as w:
        number, sha = await w.open("feature/clash", "shared.txt", "from the branch\n")
        # Meanwhile main changed the same file.
        w.repo.remote.checkout("main", "main")
        w.repo.remote.commit("shared.txt", "from main\n", "main edits shared.txt")
        w.repo.remote.push("main")
        await w.fake.sync()
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.check_title(sha) == "Blocked: merge conflict", "blocked check run")
        await until(lambda: w.comments(number, "blocked"), "the follow-up comment")
        (followup,) = w.comments(number, "blocked")
        assert "`shared.txt`" in followup["body"]
        assert "/mergebot resume" in followup["body"]
        assert f"pr-{number}-integration-blocked-{sha[:7]}" in followup["body"]

        # The author merges main and resolves in the second of the block; the fix is approved
        # and resumed.
        w.stamp_in(await w.blocked_at(number))
        git(w.repo.remote.work, "fetch", "-q", "origin")
        w.repo.remote.checkout("feature/clash", "feature/clash")
        git(w.repo.remote.work, "merge", "-q", "-X", "theirs", "origin/main", "-m", "merge main")
        w.repo.remote.commit("shared.txt", "from both\n", "resolve")
        fixed = w.repo.remote.push("feature/clash")
        await w.fake.sync()
        await w.fake.review(REPO, number, "alice")
        await w.fake.comment(REPO, number, "alice", "/mergebot resume")

        await until(lambda: w.on_main(fixed), "the fixed head on main")
        await until(lambda: w.check_title(fixed).startswith("Merged into main"), "merged check")
        assert not w.on_main(sha) or w.on_main(fixed)


async def test_a_required_check_never_created_blocks_with_its_diagnosis(
    world_factory: Callable[..., Any],
) -> None:
    checks = {"required": ["build"], "timeout_seconds": 30, "discovery_timeout_seconds": 1}
    async with world_factory(checks=checks) as w:
        before = w.main()
        number, sha = await w.open("feature/nocheck", "n.txt", "n\n")
        await w.fake.review(REPO, number, "alice")

        await until(
            lambda: w.check_title(sha) == "Blocked: required checks never appeared",
            "checks_missing",
        )
        run = w.check_run(sha)
        assert run is not None
        assert run["conclusion"] == "failure"
        summary = run["output"]["text"]  # the follow-up: the missing check and its diagnosis
        assert "build" in summary
        assert "mergebot/" in summary  # the diagnosis points at CI not running on mergebot/**
        assert w.main() == before


async def test_resume_requeues_the_blocked_sha_once_base_is_fixed(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory() as w:
        number, sha = await w.open("feature/clash", "shared.txt", "from the branch\n")
        w.repo.remote.checkout("main", "main")
        w.repo.remote.commit("shared.txt", "from main\n", "main edits shared.txt")
        w.repo.remote.push("main")
        await w.fake.sync()
        await w.fake.review(REPO, number, "alice")
        await until(lambda: w.check_title(sha) == "Blocked: merge conflict", "blocked check run")

        # A maintainer takes the clashing change out of main; the same head can now merge, but
        # only a resume puts it back in the queue.
        git(w.repo.remote.work, "rm", "-q", "shared.txt")
        git(w.repo.remote.work, "commit", "-q", "-m", "drop shared.txt from main")
        w.repo.remote.push("main")
        await w.fake.sync()
        w.stamp_in(await w.blocked_at(number))  # the resume comes in the block's own second
        await w.fake.comment(REPO, number, "eve", "/mergebot resume")  # a reader: refused
        await until(lambda: w.comments(number, "refused"), "the refusal")
        assert not w.on_main(sha)
        await w.fake.comment(REPO, number, "carol", "/mergebot resume")

        await until(lambda: w.on_main(sha), "the resumed head on main")
        await until(lambda: w.check_title(sha).startswith("Merged into main"), "merged check run")
        assert len(w.comments(number, "blocked")) == 1


async def test_a_broken_repo_config_is_explained_and_nothing_is_integrated(
    world_factory: Callable[..., Any],
) -> None:
    async with world_factory() as w:
        w.repo.remote.checkout("main", "main")
        w.repo.remote.commit(".github/mergebot.toml", 'merge_method = "fast"\nmode = "shadow"\n',
                             "a broken mergebot config")  # fmt: skip
        before = w.repo.remote.push("main")
        await w.fake.sync()
        number, sha = await w.open("feature/cfg", "cfg.txt", "cfg\n")
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.comments(number, "config_error"), "the config error comment")
        (comment,) = w.comments(number, "config_error")
        assert "`merge_method`" in comment["body"]
        assert "`mode`: may only be set in the server's config file" in comment["body"]
        await until(
            lambda: w.check_title(sha) == "Blocked: invalid .github/mergebot.toml", "check run"
        )
        assert w.main() == before


async def test_an_actions_check_that_fails_then_passes_when_its_job_is_re_run_lands_and_is_flaky(
    world_factory: Callable[..., Any],
) -> None:
    checks = {"required": ["build"], "retry_failed": 1, "timeout_seconds": 60}
    async with world_factory(checks=checks) as w:
        w.repo.ci = {"build": "failure"}  # Actions fails the first run of every integration commit…
        w.repo.ci_on_rerequest = {"build": "success"}  # …and passes when its job is re-run
        number, sha = await w.open("feature/one", "one.txt", "one\n")
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.on_main(sha), "the candidate on main")
        await until(lambda: w.check_title(sha).startswith("Merged into main"), "merged check run")
        # Another app's check run cannot be re-requested: the job went through the Actions API.
        assert w.fake.writes("POST", r"/check-runs/\d+/rerequest$") == []
        [rerun] = w.fake.writes("POST", r"/actions/jobs/\d+/rerun$")
        job_id = int(rerun.split("/")[-2])
        runs = [r for r in w.repo.check_runs.values() if r["head_sha"] == w.main()]
        first, again = sorted((r for r in runs if r["name"] == "build"), key=lambda r: r["id"])
        assert (first["id"], first["conclusion"]) == (job_id, "failure")  # the failed attempt stays
        assert (again["conclusion"], again["app"]["slug"]) == ("success", "github-actions")
        flaky = FlakyLog(w.runtime.redis, w.runtime.keys)
        assert await flaky.recent(REPO) == {"build": 1}
        assert w.comments(number, "blocked") == []


async def test_the_app_s_own_check_run_is_re_requested_and_updated_in_place(
    world_factory: Callable[..., Any],
) -> None:
    checks = {"required": ["build"], "retry_failed": 1, "timeout_seconds": 60}
    async with world_factory(checks=checks) as w:
        w.repo.ci_app = fake_server.OWN_APP  # CI reports through the app mergebot runs as
        w.repo.ci = {"build": "failure"}
        w.repo.ci_on_rerequest = {"build": "success"}
        number, sha = await w.open("feature/one", "one.txt", "one\n")
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.on_main(sha), "the candidate on main")
        assert w.fake.writes("POST", r"/actions/") == []
        [rerequest] = w.fake.writes("POST", r"/check-runs/\d+/rerequest$")
        run = w.repo.check_runs[int(rerequest.split("/")[-2])]  # the same run, updated by its app
        assert (run["name"], run["conclusion"]) == ("build", "success")
        assert run["head_sha"] == w.main()  # the integration commit that landed
        assert await FlakyLog(w.runtime.redis, w.runtime.keys).recent(REPO) == {"build": 1}


def rerun_answers(w: World) -> list[tuple[int, str | None]]:
    """GitHub's answers to re-running an Actions job, in order: (status, error message)."""
    return [
        (s.status, (s.body or {}).get("message"))
        for s in w.fake.served
        if s.op_id == "actions/re-run-job-for-workflow-run"
    ]


ALREADY_RUNNING = "The workflow run containing this job is already running"


async def test_an_early_flake_in_a_workflow_still_running_is_re_run_once_it_finished(
    world_factory: Callable[..., Any],
) -> None:
    checks = {"required": ["build", "e2e"], "retry_failed": 1, "timeout_seconds": 60}
    async with world_factory(checks=checks) as w:
        w.repo.ci = {"build": "failure", "e2e": "success"}  # build flakes at once…
        w.repo.ci_running = {"e2e"}  # …while e2e, in the same workflow run, goes on
        w.repo.ci_on_rerequest = {"build": "success"}
        number, sha = await w.open("feature/one", "one.txt", "one\n")
        await w.fake.review(REPO, number, "alice")

        await until(lambda: rerun_answers(w) == [(403, ALREADY_RUNNING)], "GitHub's 'not yet'")
        assert not w.on_main(sha)
        assert w.comments(number, "blocked") == []  # not blocked: the re-run may still come
        assert await w.fake.finish_checks(REPO) == 1  # e2e passed: the workflow run finished

        await until(lambda: w.on_main(sha), "the candidate on main")
        answers = rerun_answers(w)
        assert answers[-1] == (201, None)  # accepted once the workflow run was done
        assert set(answers[:-1]) == {(403, ALREADY_RUNNING)}
        builds = [r for r in w.repo.check_runs.values()
                  if r["head_sha"] == w.main() and r["name"] == "build"]  # fmt: skip
        assert sorted(r["conclusion"] for r in builds) == ["failure", "success"]
        assert await FlakyLog(w.runtime.redis, w.runtime.keys).recent(REPO) == {"build": 1}
        assert w.comments(number, "blocked") == []


async def test_a_flake_whose_workflow_run_outlasts_the_timeout_blocks_and_says_why(
    world_factory: Callable[..., Any],
) -> None:
    checks = {"required": ["build", "e2e"], "retry_failed": 1, "timeout_seconds": 2}
    async with world_factory(checks=checks) as w:
        w.repo.ci = {"build": "failure", "e2e": "success"}
        w.repo.ci_running = {"e2e"}  # never finishes
        w.repo.ci_on_rerequest = {"build": "success"}
        number, sha = await w.open("feature/one", "one.txt", "one\n")
        before = w.main()
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.comments(number, "blocked") != [], "the block explained")
        assert w.main() == before
        assert not w.on_main(sha)
        assert set(rerun_answers(w)) == {(403, ALREADY_RUNNING)}
        assert await FlakyLog(w.runtime.redis, w.runtime.keys).recent(REPO) == {}
        body = w.comments(number, "blocked")[0]["body"]
        assert (
            "`build` not run again on the same commit (`checks.retry_failed`): GitHub re-runs a "
            "job only once its whole workflow run has finished, and the workflow run was still "
            "running when `checks.timeout_seconds` ran out" in body
        )


@pytest.mark.parametrize(
    ("ci_app", "refused_call"),
    [
        ("github-actions", r"/actions/jobs/\d+/rerun$"),  # the app may not re-run jobs
        ("buildkite", r"/check-runs/\d+/rerequest$"),  # another app's run: not ours to re-request
    ],
)
async def test_a_failed_forge_check_github_will_not_run_again_blocks_and_says_so(
    world_factory: Callable[..., Any], ci_app: str, refused_call: str
) -> None:
    checks = {"required": ["build"], "retry_failed": 2, "timeout_seconds": 60}
    async with world_factory(checks=checks) as w:
        w.repo.ci_app = ci_app
        w.repo.ci = {"build": "failure"}
        w.repo.ci_on_rerequest = {"build": "success"}
        w.repo.refuse_job_rerun = "Resource not accessible by integration"
        number, sha = await w.open("feature/one", "one.txt", "one\n")
        before = w.main()
        await w.fake.review(REPO, number, "alice")

        await until(lambda: w.comments(number, "blocked") != [], "the block explained")
        assert len(w.fake.writes("POST", refused_call)) == 1  # a refusal is not asked again
        assert w.main() == before
        assert not w.on_main(sha)
        assert await FlakyLog(w.runtime.redis, w.runtime.keys).recent(REPO) == {}
        body = w.comments(number, "blocked")[0]["body"]
        assert "`build` not run again on the same commit (`checks.retry_failed`): the forge " \
            "refused the re-run" in body  # fmt: skip


async def test_a_rebuilt_car_s_check_run_shows_its_new_place_in_the_train(
    world_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Car 1 fails; car 2, stacked on it, is rebuilt on base: its check run, updated in place,
    stops saying it is car 2 on top of pr-1."""
    gate = tmp_path / "gate"
    gate.mkdir()
    me = "$(git rev-parse HEAD^2)"  # the candidate of the integration (merge) commit
    commands = [
        f'echo $$ > "{gate}/pid-{me}"; while [ ! -f "{gate}/go-{me}" ]; do sleep 0.02; done',
        "test ! -f bad.txt",
    ]
    async with world_factory(checks={"commands": commands}, pipeline={"depth": 2}) as w:
        one, bad = await w.open("feature/bad", "bad.txt", "bad\n")
        two, good = await w.open("feature/two", "two.txt", "two\n")
        await w.fake.review(REPO, one, "alice")
        await w.fake.review(REPO, two, "alice")

        def summary(sha: str) -> str:
            run = w.check_run(sha)
            return str(run["output"]["summary"]) if run else ""

        await until((gate / f"pid-{good}").exists, "car 2's check running")
        await until(lambda: "(car 2, on top of `pr-1`)" in summary(good), "car 2 on its run")
        first = w.check_run(good)
        assert first is not None
        (gate / f"pid-{good}").unlink()
        (gate / f"go-{bad}").write_text("")  # car 1's check fails: bad.txt

        await until(lambda: w.comments(one, "blocked") != [], "car 1 blocked")
        await until((gate / f"pid-{good}").exists, "car 2 rebuilt and checked")
        await until(lambda: "merged onto the latest `main`" in summary(good), "its new place")
        assert "car 2" not in summary(good)
        again = w.check_run(good)
        assert again is not None
        assert (again["id"], again["status"]) == (first["id"], "in_progress")  # edited in place

        (gate / f"go-{good}").write_text("")
        await until(lambda: w.on_main(good), "the rebuilt car on main")
        assert not w.on_main(bad)
