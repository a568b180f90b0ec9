"""Readiness asks a real mirror of a real bare repository: reachability and "already on base"."""

from __future__ import annotations

from pathlib import Path

from mergebot.config import RepoConfig
from mergebot.events import parse_event
from mergebot.git.facts import MirrorGitFactsSource, unsettled
from mergebot.git.mirror import Mirror
from mergebot.processor import projector_for
from mergebot.queue import Status
from mergebot.readiness import CandidateStatus, ReasonCode, RepoFacts, Rules, evaluate, fold
from mergebot.runtime import Runtime
from mergebot.store.projection import ProjectionStore
from tests.brainkit import emit, manage, process, queue_items
from tests.factories import REPO
from tests.gitutil import GitRemote, git
from tests.unit.test_readiness import approve, finalize, push


def use_real_git(runtime: Runtime, remote: GitRemote, tmp_path: Path) -> None:
    manage(runtime, remote=remote.url)
    runtime.git_facts = MirrorGitFactsSource(tmp_path / "data", {})


def candidate_events(sha: str, branch: str = "feature/one") -> list[dict[str, object]]:
    return [approve(sha=sha), finalize(sha, branch=branch), push(sha, branch=branch)]


async def queued_candidate(runtime: Runtime, remote: GitRemote, tmp_path: Path) -> str:
    """A real branch commit, approved, pushed and finalized, folded by the processor; its sha."""
    use_real_git(runtime, remote, tmp_path)
    sha = remote.branch_with("feature/one", "a.txt", "a\n")
    await emit(runtime, *candidate_events(sha))
    await process(runtime)
    return sha


async def test_real_branch_commit_becomes_ready_and_is_queued(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    sha = await queued_candidate(runtime, remote, tmp_path)
    [item] = await queue_items(runtime)
    assert (item.sha, item.status) == (sha, Status.QUEUED)


async def test_sha_not_on_its_branch_waits_with_the_reason(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    use_real_git(runtime, remote, tmp_path)
    elsewhere = remote.branch_with("feature/two", "b.txt", "b\n")
    remote.branch_with("feature/one", "a.txt", "a\n")
    await emit(runtime, *candidate_events(elsewhere))  # an event that lies about the branch
    await process(runtime)
    assert await queue_items(runtime) == []
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [cand] = state.candidates.values()
    assert [r.code for r in cand.reasons] == [ReasonCode.NOT_REACHABLE]


async def test_a_fork_pull_requests_head_is_reachable_from_its_pull_ref(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    """Condition 4 for a pull request from a fork: its branch is `pull/<n>/head` (GitHub-in names
    it so), answered by git against the fetched `refs/pull/<n>/head`."""
    use_real_git(runtime, remote, tmp_path)
    fork = remote.pull_request_head(7, "fork.txt", "from a fork\n")
    await emit(runtime, *candidate_events(fork, branch="pull/7/head"))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert (item.branch, item.sha, item.status) == ("pull/7/head", fork, Status.QUEUED)


async def test_a_fork_sha_claimed_for_another_pull_request_waits(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    use_real_git(runtime, remote, tmp_path)
    remote.pull_request_head(8, "other.txt", "other\n")
    fork = remote.pull_request_head(7, "fork.txt", "from a fork\n")
    await emit(runtime, *candidate_events(fork, branch="pull/8/head"))
    await process(runtime)
    assert await queue_items(runtime) == []
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [cand] = state.candidates.values()
    assert [r.code for r in cand.reasons] == [ReasonCode.NOT_REACHABLE]


async def test_sha_already_on_base_is_detected_as_integrated(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    use_real_git(runtime, remote, tmp_path)
    sha = remote.branch_with("feature/one", "a.txt", "a\n")
    git(remote.work, "push", "-q", "origin", f"{sha}:refs/heads/main")  # merged by hand
    await emit(runtime, *candidate_events(sha))
    await process(runtime)
    assert await queue_items(runtime) == []
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [cand] = state.candidates.values()
    assert cand.status == CandidateStatus.INTEGRATED
    assert cand.reasons[0].text == f"{sha[:7]} is already on origin/main"


async def test_queued_item_found_on_base_later_is_marked_integrated(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    use_real_git(runtime, remote, tmp_path)
    sha = remote.branch_with("feature/one", "a.txt", "a\n")
    await emit(runtime, *candidate_events(sha))
    await process(runtime)
    git(remote.work, "push", "-q", "origin", f"{sha}:refs/heads/main")  # no event says so
    await projector_for(runtime).reevaluate(REPO)  # the periodic re-check fetches and asks git
    [item] = await queue_items(runtime)
    assert item.status == Status.INTEGRATED
    assert item.history[-1].cause.startswith("found already on base")


async def test_mirror_facts_answer_from_one_fetch(remote: GitRemote, tmp_path: Path) -> None:
    sha = remote.branch_with("feature/one", "a.txt", "a\n")
    source = MirrorGitFactsSource(tmp_path / "data", {})
    facts_git = await source.snapshot(REPO, RepoConfig(remote=remote.url))
    assert facts_git.reachable(sha, "feature/one")
    assert not facts_git.on_base(sha, "main")
    remote.commit("b.txt", "b\n", "more")
    remote.push("main")  # the branch's commit lands on main, but this snapshot was fetched before
    assert not facts_git.on_base(sha, "main")
    assert (await source.snapshot(REPO, RepoConfig(remote=remote.url))).on_base(sha, "main")
    assert isinstance(source.mirrors[REPO], Mirror)
    source.close()


async def test_no_remote_configured_is_explained(tmp_path: Path) -> None:
    source = MirrorGitFactsSource(tmp_path / "data", {})
    facts_git = await source.snapshot(REPO, RepoConfig())
    facts = RepoFacts(repo=REPO)
    for raw in candidate_events("c" * 40):
        fold(facts, parse_event(raw).event)
    [state] = evaluate(facts, Rules(), facts_git).values()
    assert state.reasons[0].text == f"could not check with git: no remote is configured for {REPO}"


async def test_the_repos_config_file_on_main_sets_the_rules_read_from_the_mirror(
    runtime: Runtime, remote: GitRemote
) -> None:
    """The whole real path: the processor's fetched mirror names main's tip, and the plain git
    forge reads `.github/mergebot.toml` at that sha from the same mirror."""
    manage(runtime, remote=remote.url, required_approvals=1)
    runtime.git_facts = None  # the runtime's own mirrors, shared with the forge
    remote.checkout("main", "main")
    remote.commit(".github/mergebot.toml", "required_approvals = 2\n", "two reviewers here")
    remote.push("main")
    sha = remote.branch_with("feature/one", "a.txt", "a\n")
    try:
        await emit(runtime, *candidate_events(sha))
        await process(runtime)
        assert await queue_items(runtime) == []
        state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
        assert "needs 2 approvals" in state.candidates[f"pr-1:{sha}:feature/one"].reasons[0].text
        await emit(runtime, approve("bob", sha=sha))
        await process(runtime)
        [item] = await queue_items(runtime)
        assert (item.sha, item.status) == (sha, Status.QUEUED)
    finally:
        runtime.close_mirrors()


def mirror_branches(source: MirrorGitFactsSource) -> set[str]:
    mirror = source.mirrors[REPO]
    assert isinstance(mirror, Mirror)
    return set(mirror.remote_tips())


async def test_a_batch_fetches_only_the_branches_it_moves(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    """A batch costs what it holds: the first one of a process fetches everything, later ones
    only the branches their events put where the mirror does not show them yet; a batch that
    moves no branch fetches nothing. The periodic re-check fetches everything again."""
    sha = await queued_candidate(runtime, remote, tmp_path)
    source = runtime.git_facts
    assert isinstance(source, MirrorGitFactsSource)
    assert source.fetches == {"full": 1, "branches": 0}
    await emit(runtime, approve("bob", sha=sha), push(sha, minute=3))  # nothing moved
    await process(runtime)
    assert source.fetches == {"full": 1, "branches": 0}
    remote.branch_with("other/two", "b.txt", "b\n")
    two = remote.branch_with("feature/two", "c.txt", "c\n")
    await emit(runtime, push(two, minute=4, branch="feature/two"))
    await process(runtime)
    assert source.fetches == {"full": 1, "branches": 1}
    assert mirror_branches(source) == {"main", "feature/one", "feature/two"}
    await projector_for(runtime).reevaluate(REPO)
    assert mirror_branches(source) == {"main", "feature/one", "feature/two", "other/two"}


def test_a_branch_is_unsettled_until_the_mirror_shows_it_where_the_batch_puts_it() -> None:
    tips = {"main": "a" * 40, "feature/one": "b" * 40}
    claims = {"feature/one": "b" * 40, "feature/two": "c" * 40, "gone": "0" * 40}
    assert unsettled(tips, claims) == {"feature/two"}
    assert unsettled(tips, {"main": "d" * 40, "feature/one": "0" * 40}) == {"main", "feature/one"}


async def test_a_deleted_branch_is_pruned_by_the_batch_that_names_it(
    runtime: Runtime, remote: GitRemote, tmp_path: Path
) -> None:
    await queued_candidate(runtime, remote, tmp_path)
    git(remote.work, "push", "-q", "origin", "--delete", "feature/one")
    await emit(runtime, push("0" * 40, minute=9, branch="feature/one", deleted=True))
    await process(runtime)
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [cand] = state.candidates.values()
    assert ReasonCode.NOT_REACHABLE in [r.code for r in cand.reasons]
    assert [i.status for i in await queue_items(runtime)] == [Status.CANCELLED]


async def test_already_on_base_follows_the_base_forward_and_back(
    remote: GitRemote, tmp_path: Path
) -> None:
    """The commits of origin/main are listed once and then updated per move of the tip; a
    force push that takes a commit off main takes it out of the answer too."""
    sha = remote.branch_with("feature/one", "a.txt", "a\n")
    before = remote.rev("main")
    source = MirrorGitFactsSource(tmp_path / "data", {})
    config = RepoConfig(remote=remote.url)
    assert not (await source.snapshot(REPO, config)).on_base(sha, "main")
    git(remote.work, "push", "-q", "origin", f"{sha}:refs/heads/main")
    assert (await source.snapshot(REPO, config)).on_base(sha, "main")
    assert (await source.snapshot(REPO, config)).on_base(before, "main")
    git(remote.work, "push", "-q", "--force", "origin", f"{before}:refs/heads/main")
    facts_git = await source.snapshot(REPO, config)
    assert not facts_git.on_base(sha, "main")
    assert facts_git.on_base(before, "main")
    assert facts_git.reachable(sha, "feature/one")
    assert not facts_git.reachable("f" * 40, "feature/one")  # unknown to the mirror
    source.close()
