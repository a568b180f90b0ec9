"""Batches end to end on a real bare remote (SPEC §13): several candidates in one integration
commit checked once, a red batch bisected until its culprits are found, the good candidates
landing in queue order.

Every check command run appends the checked commit to a log file, so the tests count check runs
exactly; a candidate that adds `bad-*.txt` fails the checks of every tree that contains it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mergebot.events import EventName
from mergebot.followups import from_blocked
from mergebot.notify.view import Links, followup_context
from mergebot.queue import Status
from mergebot.render import render_todo
from mergebot.store.flaky import FlakyLog
from tests.e2e.conftest import Story
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
)
from tests.waiting import until


def counted(runs: Path) -> list[str]:
    """Check commands: log the checked commit, then fail when a `bad-*` file is in the tree."""
    return [f'git rev-parse HEAD >> "{runs}"', "! ls bad-*.txt >/dev/null 2>&1"]


def check_runs(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def candidates(story: Story, count: int, bad: set[int]) -> list[Cand]:
    return [
        make_candidate(
            story.remote,
            f"pr-{n}",
            f"bad-{n}.txt" if n in bad else f"f{n}.txt",
            f"{n}\n",
        )
        for n in range(1, count + 1)
    ]


def landed_in_order(story: Story) -> list[str]:
    """The candidate shas on main, oldest first (each merge commit's second parent)."""
    remote = story.remote
    shas = []
    for commit in reversed(remote.log("main")):
        parents = remote.parents(commit)
        shas += parents[1:]
    return shas


async def test_a_batch_of_four_good_candidates_is_checked_once_and_lands_in_queue_order(
    story: Story, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    story.manage(batch={"max_size": 4, "wait_seconds": 10}, checks={"commands": counted(runs)})
    start_sha = story.remote.rev("main")
    cands = candidates(story, 4, set())

    await story.run(*cands)

    assert check_runs(runs) == 1
    assert landed_in_order(story) == [c.sha for c in cands]
    batch_commit = story.remote.rev("main")
    # One fast-forward of main, to exactly the commit that was checked.
    assert main_updates(story.remote) == [(start_sha, batch_commit)]
    assert runs.read_text().split() == [batch_commit]
    found = await items(story.runtime)
    for cand in cands:
        item = found[cand.slug]
        assert item.status is Status.INTEGRATED
        assert item.integration.main_after == batch_commit
        assert item.integration.batch == [c.slug for c in cands]
    # Each candidate gets its own integration_completed (its own notification, PR merged).
    events = await outcome_events(story.runtime)
    assert [(e["name"], e["slug"]) for e in events] == [
        ("integration_completed", c.slug) for c in cands
    ]
    assert integration_refs(story.remote) == []
    assert story.worktrees() == []


async def test_one_bad_candidate_in_eight_is_isolated_by_bisection_and_seven_land(
    story: Story, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    story.manage(batch={"max_size": 8, "wait_seconds": 10}, checks={"commands": counted(runs)})
    cands = candidates(story, 8, {6})

    await story.run(*cands)

    good = [c for c in cands if c.slug != "pr-6"]
    assert landed_in_order(story) == [c.sha for c in good]
    assert 1 <= check_runs(runs) - 1 <= 4  # the batch's own run, then at most log2(8) + 1
    found = await items(story.runtime)
    assert found["pr-6"].status is Status.BLOCKED
    assert all(found[c.slug].status is Status.INTEGRATED for c in good)
    [blocked] = [
        e for e in await outcome_events(story.runtime) if e["name"] != "integration_completed"
    ]
    assert blocked["slug"] == "pr-6"
    assert blocked["reason"] == "checks_failed"
    assert blocked["details"]["bisection"]["batch"] == [c.slug for c in cands]
    assert blocked["details"]["checks"][0]["name"] == "! ls bad-*.txt >/dev/null 2>&1"
    text = await todo_text(story, "pr-6")
    assert "Isolated by bisection from the batch `pr-1`, `pr-2`," in text
    assert "! ls bad-*.txt" in text
    # The failing content never reached main, and main only moved forward.
    assert git(story.remote.bare, "log", "--format=%H", "main", "--", "bad-6.txt") == ""
    updates = main_updates(story.remote)
    assert all(
        old == new_prev for (old, _), (_, new_prev) in zip(updates[1:], updates, strict=False)
    )
    assert integration_refs(story.remote) == []


async def test_two_bad_candidates_in_one_batch_are_both_blocked_and_the_rest_land(
    story: Story, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    story.manage(batch={"max_size": 8, "wait_seconds": 10}, checks={"commands": counted(runs)})
    cands = candidates(story, 8, {2, 7})

    await story.run(*cands)

    found = await items(story.runtime)
    assert {found["pr-2"].status, found["pr-7"].status} == {Status.BLOCKED}
    good = [c for c in cands if c.slug not in ("pr-2", "pr-7")]
    assert landed_in_order(story) == [c.sha for c in good]
    assert all(found[c.slug].status is Status.INTEGRATED for c in good)
    assert integration_refs(story.remote) == []


async def todo_text(story: Story, slug: str) -> str:
    """The follow-up todo people read for the slug's block (PR comment, check run, dashboard)."""
    async for entry in story.runtime.eventlog.replay(repo=REPO):
        envelope = entry.envelope
        if envelope.name is EventName.INTEGRATION_BLOCKED and envelope.payload["slug"] == slug:
            followup = from_blocked(envelope, previous_id=None, now=datetime.now(UTC))
            return render_todo(followup_context(followup, Links("http://mergebot.test")))
    raise AssertionError(f"no block of {slug}")


def flaky_once(seen: Path) -> str:
    """A check that fails on the first run of each commit and passes on the next one — and
    always fails on a tree with a `bad-*` file."""
    return (
        "if ls bad-*.txt >/dev/null 2>&1; then exit 1; fi; "
        f'f="{seen}/seen-$(git rev-parse HEAD)"; [ -f "$f" ] && exit 0; touch "$f"; exit 1'
    )


async def test_a_check_that_fails_then_passes_on_the_same_commit_lands_and_is_recorded_flaky(
    story: Story, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    command = flaky_once(seen)
    story.manage(checks={"commands": [command], "retry_failed": 1})
    good = make_candidate(story.remote, "pr-1", "one.txt", "1\n")

    await story.run(good)

    found = await items(story.runtime)
    assert found["pr-1"].status is Status.INTEGRATED
    assert landed_in_order(story) == [good.sha]
    assert await FlakyLog(story.runtime.redis, story.runtime.keys).recent(REPO) == {command: 1}
    assert await FlakyLog(story.runtime.redis, story.runtime.keys).totals(REPO) == {command: 1}
    shown = await (await story.client.get(f"/api/repos/{REPO}/queue")).json()
    assert shown["flaky_checks"] == [{"check": command, "last_7_days": 1, "total": 1}]
    page = await (await story.client.get(f"/repos/{REPO}")).text()
    assert "Flaky checks" in page
    metrics = await (await story.client.get("/metrics")).text()
    assert f'mergebot_flaky_checks_total{{repo="{REPO}"}} 1.0' in metrics

    # A later real failure of that check says how flaky it has been.
    bad = make_candidate(story.remote, "pr-2", "bad-2.txt", "2\n")
    await story.run(bad)
    found = await items(story.runtime)
    assert found["pr-2"].status is Status.BLOCKED
    [blocked] = [e for e in await outcome_events(story.runtime) if e["slug"] == "pr-2"]
    assert blocked["details"]["reruns"] == 1
    assert blocked["details"]["checks"][0]["flaky_recent"] == 1
    text = await todo_text(story, "pr-2")
    assert "failed and passed on the same commit 1 time in the last 7 days" in text
    assert "Run 2 times on the same commit" in text


async def test_without_retries_a_check_that_fails_once_blocks(story: Story, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    story.manage(checks={"commands": [flaky_once(seen)]})
    cand = make_candidate(story.remote, "pr-1", "one.txt", "1\n")

    await story.run(cand)

    found = await items(story.runtime)
    assert found["pr-1"].status is Status.BLOCKED
    assert found["pr-1"].reasons[0].startswith("checks_failed")
    assert await FlakyLog(story.runtime.redis, story.runtime.keys).recent(REPO) == {}
    assert landed_in_order(story) == []


def files_at(story: Story, commit: str) -> set[str]:
    return set(git(story.remote.bare, "ls-tree", "--name-only", commit).split())


async def test_at_depth_four_both_halves_are_checked_on_the_batch_base_and_a_green_half_lands_first(
    story: Story, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    story.manage(
        batch={"max_size": 8, "wait_seconds": 10},
        pipeline={"depth": 4},
        checks={"commands": counted(runs)},
    )
    start_sha = story.remote.rev("main")
    cands = candidates(story, 8, {2})

    await story.run(*cands)

    found = await items(story.runtime)
    assert found["pr-2"].status is Status.BLOCKED
    good = [c for c in cands if c.slug != "pr-2"]
    assert all(found[c.slug].status is Status.INTEGRATED for c in good)
    assert sorted(landed_in_order(story)) == sorted(c.sha for c in good)
    assert 1 <= check_runs(runs) - 1 <= 2 * 3 + 1  # twice log2(8) + 1 at most
    checked = runs.read_text().split()
    # The batch, then both of its halves on the batch's own base, not one on the other (the two
    # run at once: either may write its line first).
    _batch, *halves = checked[:3]
    added = {frozenset(files_at(story, h) - files_at(story, start_sha)): h for h in halves}
    left_files = frozenset({"f1.txt", "bad-2.txt", "f3.txt", "f4.txt"})
    right_files = frozenset({"f5.txt", "f6.txt", "f7.txt", "f8.txt"})
    assert set(added) == {left_files, right_files}
    right = added[right_files]
    # The green second half landed first, alone; main only ever moved to a checked commit.
    updates = main_updates(story.remote)
    assert updates[0] == (start_sha, right)
    assert all(new in checked for _, new in updates)
    assert all(
        old == new_prev for (old, _), (_, new_prev) in zip(updates[1:], updates, strict=False)
    )
    assert git(story.remote.bare, "log", "--format=%H", "main", "--", "bad-2.txt") == ""
    [blocked] = [e for e in await outcome_events(story.runtime) if e["slug"] == "pr-2"]
    assert blocked["details"]["bisection"]["batch"] == [c.slug for c in cands]
    assert integration_refs(story.remote) == []
    assert story.worktrees() == []


async def queue_api(story: Story) -> dict[str, Any]:
    response = await story.client.get(f"/api/repos/{REPO}/queue")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def batch_waiting(story: Story) -> bool:
    shown = await queue_api(story)
    queued = [c for c in shown["candidates"] if c["status"] == "queued"]
    return shown["train"]["batch_wait_until"] is not None and bool(queued)


async def test_a_short_queue_waits_for_a_fuller_batch(story: Story, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    story.manage(batch={"max_size": 4, "wait_seconds": 60}, checks={"commands": counted(runs)})
    cands = candidates(story, 4, set())

    await story.post(*cands[:2], since=datetime.now(UTC))
    await process(story.runtime)
    await until(lambda: batch_waiting(story), "the integrator to wait for a fuller batch")
    assert check_runs(runs) == 0
    await story.post(*cands[2:], since=datetime.now(UTC))
    await process(story.runtime)
    await asyncio.wait_for(story.hook.idle(), timeout=60)

    # The two that came later joined the first two: one batch, one check run, in queue order.
    assert check_runs(runs) == 1
    assert landed_in_order(story) == [c.sha for c in cands]
    found = await items(story.runtime)
    assert all(found[c.slug].integration.batch == [c.slug for c in cands] for c in cands)
    assert (await queue_api(story))["train"]["batch_wait_until"] is None


async def test_a_short_batch_goes_with_what_it_has_once_the_wait_is_over(
    story: Story, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    wait = 1.5
    story.manage(batch={"max_size": 4, "wait_seconds": wait}, checks={"commands": counted(runs)})
    [cand] = candidates(story, 1, set())
    started = time.monotonic()

    await story.post(cand, since=datetime.now(UTC))
    await process(story.runtime)
    await until(lambda: batch_waiting(story), "the integrator to wait for a fuller batch")
    await asyncio.wait_for(story.hook.idle(), timeout=60)

    assert time.monotonic() - started >= wait  # it did wait for company, then went alone
    assert check_runs(runs) == 1
    assert landed_in_order(story) == [cand.sha]
    assert (await items(story.runtime))[cand.slug].status is Status.INTEGRATED
