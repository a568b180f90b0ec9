"""The train end to end at depth 3, on a real bare remote: cars checked at once, base moved in
queue order to the furthest car whose checks passed, a failing car blocked and the cars behind
it rebuilt without it, a cancelled or superseded candidate taken out while its check runs.

Each car's check command waits for a gate file named after its candidate (`HEAD^2` of a merge
commit is the candidate's sha), so the test decides when each check finishes; it writes its
process id first, so the test can tell when the command is gone.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mergebot.queue import Status
from mergebot.store.queue import QueueStore
from tests.e2e.conftest import AUTH, Story
from tests.gitutil import git
from tests.integrationkit import (
    REPO,
    Cand,
    candidate_events,
    integration_refs,
    items,
    main_updates,
    make_candidate,
    outcome_events,
    process,
)
from tests.waiting import until


def gated(gate: Path) -> list[str]:
    """Check commands: fail on bad.txt, else wait until `<gate>/go-<candidate sha>` exists."""
    me = "$(git rev-parse HEAD^2)"
    return [
        "test ! -f bad.txt",
        f'echo $$ > "{gate}/pid-{me}"; while [ ! -f "{gate}/go-{me}" ]; do sleep 0.02; done',
    ]


@pytest.fixture
def gate(story: Story, tmp_path: Path) -> Path:
    """The gate directory; the story's repo is managed at depth 3 with the gated checks."""
    path = tmp_path / "gate"
    path.mkdir()
    story.manage(pipeline={"depth": 3}, checks={"commands": gated(path)})
    return path


def release(gate: Path, cand: Cand) -> None:
    (gate / f"go-{cand.sha}").write_text("")


def running(gate: Path, cand: Cand) -> bool:
    return (gate / f"pid-{cand.sha}").exists()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def start(story: Story, *cands: Cand) -> asyncio.Task[None]:
    """Queue the candidates (the READY hook starts the integrator) and return its task."""
    await story.post(*cands)
    await process(story.runtime)
    return asyncio.ensure_future(story.hook.idle())


def merged(story: Story, cand: Cand) -> bool:
    return any(story.remote.parents(c)[1:] == [cand.sha] for c in story.remote.log("main"))


async def test_three_cars_are_checked_at_once_and_land_in_queue_order(
    story: Story, gate: Path
) -> None:
    remote = story.remote
    start_sha = remote.rev("main")
    cands = [make_candidate(remote, f"pr-{n}", f"f{n}.txt", f"{n}\n") for n in (1, 2, 3)]

    done = await start(story, *cands)
    # All three checks run at the same time, each on its own integration commit.
    await until(lambda: all(running(gate, c) for c in cands), "three checks at once", timeout=30)
    # The queue API shows the train: each car, what it is stacked on, the window.
    response = await story.client.get(f"/api/repos/{REPO}/queue")
    shown = await response.json()
    train = shown["train"]
    assert (train["window"], train["depth"], train["adaptive"]) == (3, 3, False)
    assert [(c["position"], c["slugs"], c["stacked_on"], c["checks"]) for c in train["cars"]] == [
        (1, ["pr-1"], "base", "running"),
        (2, ["pr-2"], "pr-1", "running"),
        (3, ["pr-3"], "pr-2", "running"),
    ]
    by_slug = {c["slug"]: c for c in shown["candidates"]}
    assert [by_slug[c.slug]["car"] for c in cands] == [1, 2, 3]
    assert by_slug["pr-3"]["stacked_on"] == "pr-2"
    for cand in cands:
        release(gate, cand)
        await until(lambda c=cand: merged(story, c), f"{cand.slug} on main", timeout=30)
    await asyncio.wait_for(done, timeout=30)

    history = list(reversed(remote.log("main")))
    assert history[0] == start_sha
    integration = history[1:]
    assert [remote.parents(c)[1] for c in integration] == [c.sha for c in cands]
    befores = [start_sha, *integration[:2]]
    assert main_updates(remote) == list(zip(befores, integration, strict=True))
    found = await items(story.runtime)
    assert [found[c.slug].integration.main_after for c in cands] == integration
    events = await outcome_events(story.runtime)
    assert [(e["slug"], e["main_before"], e["main_after"]) for e in events] == [
        (c.slug, before, after)
        for c, before, after in zip(cands, [start_sha, *integration[:2]], integration, strict=True)
    ]
    assert integration_refs(remote) == []
    assert story.worktrees() == []


async def test_a_failing_middle_car_is_blocked_and_the_one_behind_is_rebuilt_without_it(
    story: Story, gate: Path
) -> None:
    remote = story.remote
    start_sha = remote.rev("main")
    one = make_candidate(remote, "pr-1", "one.txt", "1\n")
    bad = make_candidate(remote, "pr-2", "bad.txt", "bad\n")
    three = make_candidate(remote, "pr-3", "three.txt", "3\n")

    done = await start(story, one, bad, three)
    await until(lambda: running(gate, one), "car 1's check", timeout=30)
    # Car 2 failed at once; car 3 stands on car 1 now (its second build) and waits.
    await until(lambda: running(gate, three), "car 3 rebuilt and checked", timeout=30)
    release(gate, one)
    release(gate, three)
    await asyncio.wait_for(done, timeout=30)

    found = await items(story.runtime)
    assert found["pr-1"].status is Status.INTEGRATED
    assert found["pr-2"].status is Status.BLOCKED
    assert found["pr-2"].reasons[0].startswith("checks_failed")
    assert found["pr-3"].status is Status.INTEGRATED
    assert found["pr-3"].integration.attempt == 2
    first, third = list(reversed(remote.log("main")))[1:]
    assert remote.parents(first) == [start_sha, one.sha]
    assert remote.parents(third) == [first, three.sha]
    # The failing content never reached main.
    assert git(remote.bare, "log", "--format=%H", "main", "--", "bad.txt") == ""
    assert main_updates(remote) == [(start_sha, first), (first, third)]
    assert integration_refs(remote) == []


async def test_cancel_during_a_check_kills_it_and_the_car_behind_lands_without_it(
    story: Story, gate: Path
) -> None:
    remote = story.remote
    cands = [make_candidate(remote, f"pr-{n}", f"c{n}.txt", f"{n}\n") for n in (1, 2, 3)]
    one, two, three = cands

    done = await start(story, *cands)
    await until(lambda: all(running(gate, c) for c in cands), "three checks at once", timeout=30)
    pid = int((gate / f"pid-{two.sha}").read_text())
    assert alive(pid)
    withdrawn = {"name": "candidate_withdrawn", "repo": REPO, "slug": "pr-2",
                 "reason": "cancelled", "at": "2026-11-25T11:00:00+00:00"}  # fmt: skip
    response = await story.client.post("/events", json=withdrawn, headers=AUTH)
    assert response.status == 201
    await process(story.runtime)  # the processor signals the train
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await until(lambda: not alive(pid), "car 2's check to be killed", timeout=5)
    assert loop.time() - asked < 5
    # Car 3 is rebuilt on car 1 and checked again.
    (gate / f"pid-{three.sha}").unlink()
    await until(lambda: running(gate, three), "car 3 rebuilt", timeout=30)
    release(gate, one)
    release(gate, three)
    await asyncio.wait_for(done, timeout=30)

    found = await items(story.runtime)
    assert {s: i.status for s, i in found.items()} == {
        "pr-1": Status.INTEGRATED, "pr-2": Status.CANCELLED, "pr-3": Status.INTEGRATED,
    }  # fmt: skip
    assert "taken out of the train" in found["pr-2"].history[-1].cause
    assert not merged(story, two)
    assert two.sha not in git(remote.bare, "rev-list", "main").splitlines()
    assert [remote.parents(c)[1] for c in reversed(remote.log("main")[:2])] == [
        one.sha,
        three.sha,
    ]
    assert [e["slug"] for e in await outcome_events(story.runtime)] == ["pr-1", "pr-3"]
    assert integration_refs(remote) == []


async def test_a_new_head_pushed_during_checks_never_lets_the_old_sha_land(
    story: Story, gate: Path
) -> None:
    remote = story.remote
    git(remote.bare, "config", "receive.denyNonFastForwards", "false")
    old = make_candidate(remote, "pr-1", "v1.txt", "old\n")
    other = make_candidate(remote, "pr-2", "other.txt", "2\n")

    done = await start(story, old, other)
    await until(lambda: running(gate, old) and running(gate, other), "both checks", timeout=30)
    # A rewritten head for pr-1 (not a descendant of the old one), made ready again.
    remote.checkout("feature/pr-1")
    remote.commit("v2.txt", "new\n", "pr-1 rewritten")
    new = Cand("pr-1", "feature/pr-1", remote.push("feature/pr-1", force=True))
    events = candidate_events(new, 10)
    response = await story.client.post("/events", json=events, headers=AUTH)
    assert response.status == 201
    await process(story.runtime)
    await until(lambda: running(gate, new), "the new head checked", timeout=30)
    for cand in (old, other, new):
        release(gate, cand)
    await until(lambda: merged(story, new), "the new head on main", timeout=30)
    await asyncio.wait_for(done, timeout=30)

    found = await QueueStore(story.runtime.redis, story.runtime.keys).items(REPO, "main")
    statuses = [(i.sha, i.status) for i in found]
    assert (old.sha, Status.SUPERSEDED) in statuses
    assert (new.sha, Status.INTEGRATED) in statuses
    assert (other.sha, Status.INTEGRATED) in statuses
    assert not merged(story, old)
    ancestors = git(remote.bare, "rev-list", "main").splitlines()
    assert old.sha not in ancestors


async def test_a_higher_priority_takes_the_next_free_car_without_preempting(
    story: Story, gate: Path
) -> None:
    remote = story.remote
    cands = [make_candidate(remote, f"pr-{n}", f"p{n}.txt", f"{n}\n") for n in (1, 2, 3, 4, 5)]

    done = await start(story, *cands)
    await until(lambda: all(running(gate, c) for c in cands[:3]), "three cars", timeout=30)
    priority = {"name": "priority_set", "repo": REPO, "slug": "pr-5", "priority": 5,
                "set_by": "carol", "at": "2026-11-25T11:00:00+00:00"}  # fmt: skip
    response = await story.client.post("/events", json=priority, headers=AUTH)
    assert response.status == 201
    await process(story.runtime)
    found = await items(story.runtime)
    assert [found[c.slug].status for c in cands[:3]] == [Status.IN_PROGRESS] * 3
    release(gate, cands[0])
    # pr-5 takes the free car, stacked on pr-3, before pr-4.
    await until(lambda: running(gate, cands[4]), "pr-5 in the train", timeout=30)
    assert not running(gate, cands[3])
    for cand in cands:
        release(gate, cand)
    await asyncio.wait_for(done, timeout=60)

    landed = [e["slug"] for e in await outcome_events(story.runtime)]
    assert landed == ["pr-1", "pr-2", "pr-3", "pr-5", "pr-4"]
