"""Queue changes shown on GitHub: the `mergebot` check run follows the candidate, a blocked
candidate gets its follow-up comment, a landed one is closed or left merged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mergebot.config import ServerConfig
from mergebot.events import (
    IntegrationBlocked,
    IntegrationCompleted,
    QueueFrozen,
    QueueUnfrozen,
    envelope_for,
)
from mergebot.github.reporter import drain
from mergebot.queue import IntegrationRecord, QueueItem, Status
from mergebot.runtime import Runtime
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.queue import QueueStore
from tests.brainkit import process
from tests.fakegithub.harness import mergebot_for, settings_for
from tests.fakegithub.server import FakeGitHub
from tests.gitutil import git

REPO = "acme/widgets"


@asynccontextmanager
async def github_repo(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[Any, Runtime, QueueStore]]:
    """A GitHub repo on the fake server, mergebot running for it, and its queue store."""
    repo = fake_github.add_repo(REPO)
    config = ServerConfig({}, {REPO: {"forge": "github", "remote": str(repo.bare), **settings}})
    async with mergebot_for(
        fake_github, redis, keys, config, settings_for(fake_github, tmp_path)
    ) as runtime:
        yield repo, runtime, QueueStore(redis, keys)


def item_for(slug: str, branch: str, sha: str) -> QueueItem:
    now = datetime.now(UTC)
    return QueueItem(repo=REPO, base="main", slug=slug, branch=branch, sha=sha,
                     status=Status.QUEUED, ready_at=now, updated_at=now)  # fmt: skip


async def pull_in_progress(
    fake_github: FakeGitHub, repo: Any, store: QueueStore
) -> tuple[int, str, QueueItem]:
    """A pull request (branch `two`) whose head the integrator has just picked up."""
    sha = repo.remote.branch_with("two", "two.txt", "2\n")
    await fake_github.sync()
    number = await fake_github.open_pull(REPO, "two", "bob")
    candidate = item_for(f"pr-{number}", "two", sha)
    await store.enqueue(candidate)
    await store.transition(REPO, "main", candidate.id, Status.IN_PROGRESS, cause="picked")
    return number, sha, candidate


def mergebot_run(repo: Any, sha: str) -> dict[str, Any]:
    (run,) = [
        r for r in repo.check_runs.values() if r["head_sha"] == sha and r["name"] == "mergebot"
    ][-1:]
    return dict(run)


async def test_the_check_run_follows_the_candidate_to_merged(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    async with github_repo(fake_github, redis, keys, tmp_path) as (repo, runtime, store):
        first = repo.remote.branch_with("one", "one.txt", "1\n")
        sha = repo.remote.branch_with("two", "two.txt", "2\n")
        await fake_github.sync()
        number = await fake_github.open_pull(REPO, "two", "bob")
        ahead = item_for("pr-99", "one", first)
        await store.enqueue(ahead)
        candidate = item_for(f"pr-{number}", "two", sha)
        await store.enqueue(candidate)
        assert await drain(runtime, "test") == 2
        run = mergebot_run(repo, sha)
        assert (run["status"], run["output"]["title"]) == (
            "queued",
            "Queued at position 2 for main",
        )

        # The one ahead leaves the queue: the candidate moves up, and its check run says so.
        await store.transition(REPO, "main", ahead.id, Status.CANCELLED, cause="withdrawn")
        await drain(runtime, "test")
        run = mergebot_run(repo, sha)
        assert (run["status"], run["output"]["title"]) == (
            "queued",
            "Queued at position 1 for main",
        )
        assert len([r for r in repo.check_runs.values() if r["head_sha"] == sha]) == 1

        await store.transition(REPO, "main", candidate.id, Status.IN_PROGRESS, cause="picked",
                               integration=IntegrationRecord(integration_sha=sha))  # fmt: skip
        await drain(runtime, "test")
        run = mergebot_run(repo, sha)
        assert (run["status"], run["output"]["title"]) == ("in_progress", "Integrating into main")

        # The integrator lands the candidate by a merge commit: GitHub marks the PR merged.
        main_before = repo.remote.rev("main")
        git(repo.remote.work, "checkout", "-q", "main")
        git(repo.remote.work, "merge", "-q", "--no-ff", "-m", "merge two", sha)
        merged = repo.remote.push("main")
        done = IntegrationCompleted(repo=REPO, slug=f"pr-{number}", branch="two", sha=sha,
                                    main_before=main_before, main_after=merged,
                                    integrated_at=datetime.now(UTC), checks=[])  # fmt: skip
        await runtime.eventlog.append(envelope_for(done, source="integrator"))
        await store.transition(REPO, "main", candidate.id, Status.INTEGRATED, cause="landed")
        await drain(runtime, "test")

        run = mergebot_run(repo, sha)
        assert (run["status"], run["conclusion"]) == ("completed", "success")
        assert run["output"]["title"] == f"Merged into main as {merged[:7]}"
        pull = repo.pulls[number]
        assert (pull.state, pull.merged) == ("closed", True)
        assert repo.comments.get(number, []) == []  # nothing for a person to do
        assert fake_github.writes("PATCH", f"/pulls/{number}$") == []


async def test_a_blocked_candidate_gets_its_follow_up_once(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    async with github_repo(fake_github, redis, keys, tmp_path) as (repo, runtime, store):
        number, sha, candidate = await pull_in_progress(fake_github, repo, store)
        followup = f"pr-{number}-integration-blocked-{sha[:7]}"
        blocked = IntegrationBlocked(
            repo=REPO, slug=f"pr-{number}", branch="two", sha=sha, reason="merge_conflict",
            details={"files": ["two.txt"]}, blocked_at=datetime.now(UTC), followup_id=followup,
        )  # fmt: skip
        await runtime.eventlog.append(envelope_for(blocked, source="integrator"))
        await store.transition(REPO, "main", candidate.id, Status.BLOCKED, cause="conflict",
                               followup_id=followup, reasons=["merge_conflict"])  # fmt: skip
        await drain(runtime, "test")
        await store.transition(REPO, "main", candidate.id, Status.QUEUED, cause="resume")
        await store.transition(REPO, "main", candidate.id, Status.IN_PROGRESS, cause="picked")
        await store.transition(REPO, "main", candidate.id, Status.BLOCKED, cause="conflict",
                               followup_id=followup, reasons=["merge_conflict"])  # fmt: skip
        await drain(runtime, "test")

        run = mergebot_run(repo, sha)
        assert (run["status"], run["conclusion"]) == ("completed", "failure")
        assert run["output"]["title"] == "Blocked: merge conflict"
        assert "merge conflict** in 1 file" in run["output"]["summary"]
        assert "- `two.txt`" in run["output"]["text"]  # the follow-up, as the run's text
        (comment,) = repo.comments[number]  # edited, not repeated
        # The comment is the follow-up todo itself.
        assert comment["body"].startswith(f"# ⛔ {REPO} pr-{number}: merge conflict")
        assert "- `two.txt`" in comment["body"]
        assert followup in comment["body"]
        assert "/mergebot resume" in comment["body"]


async def test_a_block_too_big_for_github_is_cut_to_fit_and_still_shown(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    """20 failing matrix jobs with 6,000-character logs and 300 files: GitHub (the fake refuses
    what GitHub refuses) takes the check run and the comment, and the person reads what to do."""
    async with github_repo(fake_github, redis, keys, tmp_path) as (repo, runtime, store):
        number, sha, candidate = await pull_in_progress(fake_github, repo, store)
        followup = f"pr-{number}-integration-blocked-{sha[:7]}"
        log = "\n".join(f"{i:05d} " + "e" * 70 for i in range(80))[:6000]
        checks = [{"name": f"matrix ({i})", "state": "failure", "output_tail": log,
                   "url": f"https://ci.example.com/{i}"} for i in range(20)]  # fmt: skip
        blocked = IntegrationBlocked(
            repo=REPO, slug=f"pr-{number}", branch="two", sha=sha, reason="checks_failed",
            details={"checks": checks, "files": [f"f{i}.txt" for i in range(300)],
                     "message": "m" * 100_000},
            blocked_at=datetime.now(UTC), followup_id=followup,
        )  # fmt: skip
        await runtime.eventlog.append(envelope_for(blocked, source="integrator"))
        await store.transition(REPO, "main", candidate.id, Status.BLOCKED, cause="checks",
                               followup_id=followup, reasons=["checks_failed"])  # fmt: skip
        await drain(runtime, "test")

        run = mergebot_run(repo, sha)
        assert run["output"]["title"] == "Blocked: checks failed"
        assert len(run["output"]["text"]) <= 65_535
        (comment,) = repo.comments[number]
        assert len(comment["body"]) <= 65_536
        assert "### How to resume" in comment["body"]
        assert "- … and 200 more" in comment["body"]  # files: the first 100 and a count


async def test_a_shadow_decision_is_shown_as_would_merge_and_leaves_the_pull_request(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    squashing = github_repo(fake_github, redis, keys, tmp_path, merge_method="squash")
    async with squashing as (repo, runtime, store):
        number, sha, candidate = await pull_in_progress(fake_github, repo, store)
        would = "f" * 40  # the integration commit, built locally and never pushed
        done = IntegrationCompleted(repo=REPO, slug=f"pr-{number}", branch="two", sha=sha,
                                    main_before=repo.remote.rev("main"), main_after=would,
                                    integrated_at=datetime.now(UTC), checks=[],
                                    mode="shadow")  # fmt: skip
        await runtime.eventlog.append(envelope_for(done, source="integrator"))
        await store.transition(
            REPO, "main", candidate.id, Status.INTEGRATED, cause="shadow: would integrate",
            integration=IntegrationRecord(mode="shadow", main_after=would, would_integrate=would),
        )  # fmt: skip
        await drain(runtime, "test")

        run = mergebot_run(repo, sha)
        assert (run["status"], run["conclusion"]) == ("completed", "neutral")
        assert run["output"]["title"] == "Would merge into main as fffffff (shadow mode)"
        assert "pushes nothing" in run["output"]["summary"]
        pull = repo.pulls[number]
        assert (pull.state, pull.merged) == ("open", False)  # squash would have closed it
        assert repo.comments.get(number, []) == []
        assert fake_github.writes("PATCH", f"/pulls/{number}$") == []


async def test_a_freeze_is_shown_on_the_check_run_of_the_candidate_being_integrated(
    fake_github: FakeGitHub, redis: RedisClient, keys: Keys, tmp_path: Path
) -> None:
    async with github_repo(fake_github, redis, keys, tmp_path) as (repo, runtime, store):
        _number, sha, _candidate = await pull_in_progress(fake_github, repo, store)
        await drain(runtime, "test")
        assert mergebot_run(repo, sha)["output"]["title"] == "Integrating into main"

        at = datetime.now(UTC)
        frozen = QueueFrozen(repo=REPO, base="main", reason="release 2.4", by="dana", at=at)
        await runtime.eventlog.append(envelope_for(frozen, source="cli"))
        await process(runtime)
        await drain(runtime, "test")  # no queue change: the freeze alone re-renders it
        run = mergebot_run(repo, sha)
        assert run["output"]["title"] == "Integrating into main (main is frozen)"
        assert "**`main` is frozen:** release 2\\.4 (by dana)" in run["output"]["summary"]

        thawed = QueueUnfrozen(repo=REPO, base="main", by="dana", at=at + timedelta(minutes=1))
        await runtime.eventlog.append(envelope_for(thawed, source="cli"))
        await process(runtime)
        await drain(runtime, "test")
        assert mergebot_run(repo, sha)["output"]["title"] == "Integrating into main"
