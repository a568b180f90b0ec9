"""The integrator end to end, in process: canonical events through POST /events, the processor
folds them and calls the READY hook, the integrator drains the queue into a real bare remote."""

from __future__ import annotations

import asyncio

from mergebot.forge.base import CheckResult, CheckState
from mergebot.integrator import Integrator
from mergebot.queue import Status
from mergebot.store.lease import Lease
from tests.e2e.conftest import Story
from tests.fakeforge import FakeForge
from tests.gitutil import git
from tests.integrationkit import (
    REPO,
    Cand,
    integration_refs,
    items,
    main_updates,
    make_candidate,
    outcome_events,
    process,
    remote_snapshot,
)
from tests.waiting import until


async def test_three_candidates_land_in_fifo_order_as_merge_commits(story: Story) -> None:
    story.manage()
    remote = story.remote
    start = remote.rev("main")
    cands = [make_candidate(remote, f"pr-{n}", f"f{n}.txt", f"{n}\n") for n in (1, 2, 3)]

    await story.run(*cands)

    history = remote.log("main")
    assert len(history) == 4
    assert history[-1] == start
    merges = list(reversed(history[:-1]))
    previous = start
    for cand, merge in zip(cands, merges, strict=True):
        assert remote.parents(merge) == [previous, cand.sha]
        message = git(remote.bare, "log", "-1", "--format=%B", merge)
        assert message.startswith(f"Merge {cand.slug} ({cand.sha[:7]}) into main")
        assert "Approved-by: alice" in message
        previous = merge
    # main only ever moved forward, one candidate at a time.
    assert main_updates(remote) == [(start, merges[0]), (merges[0], merges[1]),
                                        (merges[1], merges[2])]  # fmt: skip
    found = await items(story.runtime)
    assert {s: i.status for s, i in found.items()} == dict.fromkeys(
        ("pr-1", "pr-2", "pr-3"), Status.INTEGRATED
    )
    assert found["pr-2"].integration.main_after == merges[1]
    events = await outcome_events(story.runtime)
    assert [(e["name"], e["slug"], e["main_before"], e["main_after"]) for e in events] == [
        ("integration_completed", c.slug, before, after)
        for c, before, after in zip(cands, [start, *merges[:2]], merges, strict=True)
    ]
    assert integration_refs(remote) == []
    assert story.worktrees() == []


async def test_a_pull_request_from_a_fork_is_merged_from_its_pull_ref(story: Story) -> None:
    story.manage()
    remote = story.remote
    start = remote.rev("main")
    fork = Cand("pr-7", "pull/7/head", remote.pull_request_head(7, "fork.txt", "fork\n"))

    await story.run(fork)

    [merge] = remote.log("main")[:1]
    assert remote.parents(merge) == [start, fork.sha]
    assert (await items(story.runtime))["pr-7"].status is Status.INTEGRATED
    assert git(remote.bare, "show", "main:fork.txt") == "fork"
    # Nothing was pushed for the fork's branch: only main moved.
    assert [r for r in remote.refs() if r.startswith("refs/heads/")] == ["refs/heads/main"]


async def test_conflict_blocks_with_its_files_and_main_is_untouched(story: Story) -> None:
    story.manage()
    remote = story.remote
    clash = make_candidate(remote, "pr-1", "README.md", "theirs\n")
    remote.checkout("main", create=False)
    git(remote.work, "reset", "-q", "--hard", "origin/main")
    remote.commit("README.md", "ours\n", "main edits README")
    before = remote.push("main")
    fine = make_candidate(remote, "pr-2", "ok.txt", "ok\n")

    await story.run(clash, fine)

    found = await items(story.runtime)
    blocked = found["pr-1"]
    assert blocked.status is Status.BLOCKED
    assert blocked.followup_id == f"pr-1-integration-blocked-{clash.sha[:7]}"
    assert blocked.reasons[0].startswith("merge_conflict: merge conflict in README.md")
    event = (await outcome_events(story.runtime))[0]
    assert event["name"] == "integration_blocked"
    assert event["reason"] == "merge_conflict"
    assert event["details"]["files"] == ["README.md"]
    assert event["followup_id"] == blocked.followup_id
    # The next candidate still lands; the conflicting one never touched main.
    assert found["pr-2"].status is Status.INTEGRATED
    assert remote.parents(remote.rev("main")) == [before, fine.sha]
    assert integration_refs(remote) == []


async def test_a_failing_check_command_blocks_with_its_output_tail(story: Story) -> None:
    story.manage(checks={"commands": [
        "echo checking",
        "if [ -f broken.txt ]; then echo 'FAIL: broken.txt is not allowed' >&2; exit 1; fi",
    ]})  # fmt: skip
    before = story.remote.rev("main")
    bad = make_candidate(story.remote, "pr-1", "broken.txt", "x\n")

    await story.run(bad)

    item = (await items(story.runtime))["pr-1"]
    assert item.status is Status.BLOCKED
    event = (await outcome_events(story.runtime))[0]
    assert event["reason"] == "checks_failed"
    failed = event["details"]["checks"]
    assert [(c["name"], c["state"], c["exit_code"]) for c in failed] == [
        ("if [ -f broken.txt ]; then echo 'FAIL: broken.txt is not allowed' >&2; exit 1; fi",
         "failed", 1)
    ]  # fmt: skip
    assert failed[0]["output_tail"] == "FAIL: broken.txt is not allowed"
    assert story.remote.rev("main") == before
    assert integration_refs(story.remote) == []


async def test_base_moved_during_checks_is_rebuilt_and_lands(story: Story) -> None:
    remote = story.remote
    cand = make_candidate(remote, "pr-1", "mine.txt", "mine\n")
    theirs: list[str] = []

    class MovingForge(FakeForge):
        async def check_results(self, repo: str, sha: str) -> list[CheckResult]:
            if not theirs:  # someone else moves main while our checks run
                theirs.append(
                    await asyncio.to_thread(remote.branch_with, "hotfix", "hot.txt", "hot\n")
                )
                await asyncio.to_thread(git, remote.work, "push", "-q", "origin",
                                        f"{theirs[0]}:refs/heads/main")  # fmt: skip
            return [CheckResult("ci", CheckState.SUCCESS, f"https://ci/{sha}")]

    forge = MovingForge()
    story.runtime.forge_override = lambda repo: forge
    story.manage(checks={"required": ["ci"]})

    await story.run(cand)

    item = (await items(story.runtime))["pr-1"]
    assert item.status is Status.INTEGRATED
    assert item.integration.attempt == 2
    head = remote.rev("main")
    assert remote.parents(head) == [theirs[0], cand.sha]
    assert item.integration.main_after == head
    assert item.integration.checks[0]["url"] == f"https://ci/{head}"
    assert integration_refs(remote) == []


async def test_shadow_mode_leaves_the_remote_byte_for_byte_unchanged(story: Story) -> None:
    story.manage(mode="shadow", checks={"commands": ["true"], "required": ["ci"]})
    cands = [make_candidate(story.remote, f"pr-{n}", f"s{n}.txt", f"{n}\n") for n in (1, 2)]
    before = remote_snapshot(story.remote)

    await story.run(*cands)

    assert remote_snapshot(story.remote) == before
    found = await items(story.runtime)
    for cand in cands:
        item = found[cand.slug]
        assert item.status is Status.INTEGRATED
        assert item.integration.mode == "shadow"
        assert item.integration.would_integrate
        assert item.history[-1].cause.startswith("shadow: would integrate")
        assert [c["state"] for c in item.integration.checks] == ["passed", "would_wait"]
    events = await outcome_events(story.runtime)
    assert [(e["name"], e["mode"]) for e in events] == [("integration_completed", "shadow")] * 2


async def test_rebase_method_gives_a_linear_history(story: Story) -> None:
    story.manage(merge_method="rebase")
    remote = story.remote
    start = remote.rev("main")
    one = make_candidate(remote, "pr-1", "r1.txt", "1\n")
    two = make_candidate(remote, "pr-2", "r2.txt", "2\n")

    await story.run(one, two)

    subjects = git(remote.bare, "log", "--format=%s", f"{start}..main").splitlines()
    assert subjects == ["feature/pr-2: change r2.txt", "feature/pr-1: change r1.txt"]
    assert git(remote.bare, "rev-list", "--merges", f"{start}..main") == ""
    assert remote.log("main")[1] == one.sha  # the first was already on top of main: as is
    assert remote.rev("main") != two.sha  # the second was replayed onto the first


async def test_squash_method_gives_one_commit_per_candidate(story: Story) -> None:
    story.manage(merge_method="squash")
    remote = story.remote
    start = remote.rev("main")
    remote.branch_with("feature/pr-1", "a.txt", "a\n")
    remote.commit("b.txt", "b\n", "second commit of pr-1")
    one = Cand("pr-1", "feature/pr-1", remote.push("feature/pr-1"))

    await story.run(one)

    head = remote.rev("main")
    assert remote.parents(head) == [start]
    message = git(remote.bare, "log", "-1", "--format=%B", head)
    assert message.startswith(f"pr-1: squash feature/pr-1 ({one.sha[:7]}) into main")
    assert git(remote.bare, "show", f"{head}:b.txt") == "b"
    assert (await items(story.runtime))["pr-1"].status is Status.INTEGRATED


async def test_not_ready_at_the_recheck_is_never_blocked(story: Story) -> None:
    story.manage()
    remote = story.remote
    cand = make_candidate(remote, "pr-1", "x.txt", "x\n")
    story.runtime.ready_hook = None  # queue it, but integrate later
    await story.post(cand)
    await process(story.runtime)
    assert (await items(story.runtime))["pr-1"].status is Status.QUEUED
    # The branch is force-pushed to something else before the integrator gets to it.
    git(remote.bare, "config", "receive.denyNonFastForwards", "false")
    remote.checkout("feature/pr-1", create=False)
    git(remote.work, "reset", "-q", "--hard", "origin/main")
    remote.commit("y.txt", "y\n", "rewritten")
    remote.push("feature/pr-1", force=True)
    before = remote.rev("main")

    result = await Integrator(story.runtime, REPO).drain()

    item = (await items(story.runtime))["pr-1"]
    assert item.status is Status.CANCELLED
    assert "not ready any more" in item.history[-1].cause
    assert result.outcomes == [(item.id, "cancelled")]
    assert remote.rev("main") == before
    assert await outcome_events(story.runtime) == []


async def test_a_lost_lease_stops_the_integrator_before_it_moves_main(story: Story) -> None:
    forge = FakeForge()  # the required check never finishes
    story.runtime.forge_override = lambda repo: forge
    story.manage(lease_ttl_seconds=1, lease_renew_seconds=0.1, checks={"required": ["ci"]})
    cand = make_candidate(story.remote, "pr-1", "x.txt", "x\n")
    before = story.remote.rev("main")
    story.runtime.ready_hook = None
    await story.post(cand)
    await process(story.runtime)

    drain = asyncio.create_task(Integrator(story.runtime, REPO, owner="first").drain())
    await until(lambda: forge.calls > 0, "the integrator to wait for the check", timeout=30)
    keys = story.runtime.keys
    await story.runtime.redis.delete(keys.lease(REPO, "main"))
    thief = Lease(story.runtime.redis, keys, REPO, "main", "second", 60, 10)
    assert await thief.acquire()

    result = await asyncio.wait_for(drain, timeout=30)

    assert result.status == "lost"
    assert story.remote.rev("main") == before
    assert (await items(story.runtime))["pr-1"].status is Status.IN_PROGRESS
    assert (await thief.holder()) is not None
    assert (await thief.holder()).owner == "second"  # type: ignore[union-attr]


async def test_an_invalid_repo_config_integrates_nothing(story: Story) -> None:
    story.manage()
    remote = story.remote
    remote.checkout("main", create=False)
    git(remote.work, "reset", "-q", "--hard", "origin/main")
    remote.commit(".github/mergebot.toml", 'merge_methd = "squash"\n', "typo in the config")
    before = remote.push("main")
    cand = make_candidate(remote, "pr-1", "x.txt", "x\n")
    story.runtime.ready_hook = None
    await story.post(cand)
    await process(story.runtime)

    result = await Integrator(story.runtime, REPO).drain()

    assert result.status == "stopped"
    assert ".github/mergebot.toml: merge_methd: unknown key" in result.message
    assert (await items(story.runtime))["pr-1"].status is Status.QUEUED
    assert remote.rev("main") == before
    assert await story.runtime.redis.exists(story.runtime.keys.lease(REPO, "main")) == 0
