"""A long log of several repos is replayed by several processes, each taking a share of the
repos: the report is the one a single process gives, drift in any share is found and repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergebot import rebuild
from mergebot.config import ServerConfig
from mergebot.queue import Status
from mergebot.rebuild import replay, share_out
from mergebot.runtime import Runtime
from mergebot.store.queue import QueueStore
from tests.brainkit import emit, process, queue_items
from tests.gitutil import GitRemote
from tests.unit.test_readiness import approve, finalize, push

REPOS = ["acme/one", "acme/two", "acme/three"]


async def _three_repos(runtime: Runtime, redis_url: str, tmp_path: Path) -> None:
    """Three repos on real bare remotes (git asked through mirrors, as in production), two
    ready candidates each, folded by the processor."""
    remotes = {repo: GitRemote(tmp_path / "remotes", repo.replace("/", "-")) for repo in REPOS}
    runtime.server_config = ServerConfig({}, {r: {"remote": g.url} for r, g in remotes.items()})
    runtime.redis_url = redis_url
    for repo, remote in remotes.items():
        for n in (1, 2):
            branch = f"feature/{n}"
            sha = remote.branch_with(branch, f"f{n}.txt", f"{repo} {n}\n")
            common = {"repo": repo, "slug": f"pr-{n}"}
            await emit(
                runtime, push(sha, branch=branch, repo=repo), approve(sha=sha, **common),
                finalize(sha, branch=branch, **common),
            )  # fmt: skip
    await process(runtime)
    for repo in REPOS:
        assert [i.status for i in await queue_items(runtime, repo)] == [Status.QUEUED] * 2


@pytest.fixture
def any_log_is_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """Share out even this short log (a real one needs 20,000 entries per process)."""
    monkeypatch.setattr(rebuild, "ENTRIES_PER_PROCESS", 1)


@pytest.mark.usefixtures("any_log_is_long")
async def test_a_shared_replay_reports_what_one_process_reports(
    runtime: Runtime, redis_url: str, tmp_path: Path
) -> None:
    await _three_repos(runtime, redis_url, tmp_path)

    alone = await replay(runtime, jobs=1)
    shared = await replay(runtime, jobs=2)

    assert (alone.processes, shared.processes) == (1, 2)
    assert [r.repo for r in shared.repos] == sorted(REPOS)
    assert shared.repos == alone.repos
    assert shared.entries == alone.entries == 18
    assert shared.differences == 0


@pytest.mark.usefixtures("any_log_is_long")
async def test_a_shared_replay_finds_and_repairs_drift_in_every_share(
    runtime: Runtime, redis_url: str, tmp_path: Path
) -> None:
    await _three_repos(runtime, redis_url, tmp_path)
    store = QueueStore(runtime.redis, runtime.keys)
    victims = {}
    for repo in REPOS:  # an item cancelled behind the log's back, in every repo
        victim = (await queue_items(runtime, repo))[0].id
        await store.transition(repo, "main", victim, Status.CANCELLED, cause="manual meddling")
        victims[repo] = victim

    found = await replay(runtime, jobs=3)

    assert found.processes == 3
    assert {r.repo: r.differences for r in found.repos} == {
        repo: [f"item {victims[repo]}: stored cancelled, rebuilt queued"] for repo in REPOS
    }
    fixed = await replay(runtime, apply=True, jobs=3)
    assert [r.applied for r in fixed.repos] == [True, True, True]
    for repo in REPOS:
        assert [i.status for i in await queue_items(runtime, repo)] == [Status.QUEUED] * 2
    assert (await replay(runtime, jobs=3)).differences == 0
    leftovers = [k async for k in runtime.redis.scan_iter(match=f"{runtime.keys.prefix}:replay-*")]
    assert leftovers == []


async def test_a_short_log_is_replayed_in_one_process(
    runtime: Runtime, redis_url: str, tmp_path: Path
) -> None:
    await _three_repos(runtime, redis_url, tmp_path)
    report = await replay(runtime, jobs=4)
    assert report.processes == 1
    assert report.differences == 0


def test_repos_are_shared_out_by_weight_each_once() -> None:
    weights = {"a/big": 900, "a/mid": 500, "a/small": 300, "a/tiny": 100, "a/new": 0}
    groups = share_out(weights, 2)
    assert groups == [["a/big", "a/new"], ["a/mid", "a/small", "a/tiny"]]
    assert share_out(weights, 9) == [["a/big"], ["a/mid"], ["a/small"], ["a/tiny"], ["a/new"]]
    assert share_out({}, 3) == []
