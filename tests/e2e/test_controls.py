"""Queue controls end to end on a real bare remote: priorities reorder the next integrations; a
freeze, a freeze window and a red base keep a checked candidate from landing until they end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from mergebot.queue import Status
from tests.e2e.conftest import AUTH, Story
from tests.gitutil import git
from tests.integrationkit import REPO, T0, items, make_candidate, outcome_events, process
from tests.waiting import until


def gate_check(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A check command that passes once the test opens its gate file (no sleeping in tests:
    the test decides when checks finish)."""
    gate = tmp_path / "checks-may-finish"
    command = f"while [ ! -e '{gate}' ]; do sleep 0.02; done"
    return gate, {"commands": [command], "timeout_seconds": 60}


async def set_priority(story: Story, slug: str, priority: int, minute: int) -> None:
    body = {
        "name": "priority_set", "repo": REPO, "slug": slug, "priority": priority,
        "set_by": "carol", "at": T0.replace(minute=minute).isoformat(),
    }  # fmt: skip
    response = await story.client.post("/events", json=body, headers=AUTH)
    assert response.status == 201, await response.text()


async def test_priorities_change_the_order_of_the_next_integrations_without_preempting(
    story: Story, tmp_path: Path
) -> None:
    gate, checks = gate_check(tmp_path)
    story.manage(checks=checks)
    remote = story.remote
    cands = [make_candidate(remote, f"pr-{n}", f"f{n}.txt", f"{n}\n") for n in (1, 2, 3, 4)]
    await story.post(*cands)
    await process(story.runtime)

    async def first_in_progress() -> bool:
        return (await items(story.runtime))["pr-1"].status is Status.IN_PROGRESS

    await until(first_in_progress, "pr-1 to be taken")
    # While pr-1's checks run: pr-4 jumps the queue, pr-3 is lowered, pr-1 keeps its car.
    await set_priority(story, "pr-4", 10, 30)
    await set_priority(story, "pr-3", -1, 31)
    await process(story.runtime)
    found = await items(story.runtime)
    assert (found["pr-1"].status, found["pr-4"].priority) == (Status.IN_PROGRESS, 10)
    gate.touch()
    await asyncio.wait_for(story.hook.idle(), timeout=60)

    landed = [e["slug"] for e in await outcome_events(story.runtime)]
    assert landed == ["pr-1", "pr-4", "pr-2", "pr-3"]
    history = list(reversed(remote.log("main")[:4]))
    assert [remote.parents(m)[1] for m in history] == [
        cands[0].sha, cands[3].sha, cands[1].sha, cands[2].sha,
    ]  # fmt: skip


async def queue_status(story: Story) -> dict[str, Any]:
    response = await story.client.get(f"/api/repos/{REPO}/queue")
    assert response.status == 200
    return cast(dict[str, Any], await response.json())


async def control(story: Story, action: str, **body: object) -> dict[str, Any]:
    response = await story.client.post(f"/api/repos/{REPO}/{action}", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    return cast(dict[str, Any], await response.json())


async def held(story: Story) -> dict[str, Any] | None:
    return cast(dict[str, Any] | None, (await queue_status(story))["held"])


async def test_a_frozen_queue_checks_a_candidate_but_base_moves_only_after_unfreeze(
    story: Story,
) -> None:
    story.manage(checks={"commands": ["true"]})
    remote = story.remote
    start = remote.rev("main")
    stored = await control(story, "freeze", reason="release 2.4 is being cut", by="dana")
    assert stored["event"]["base"] == "main"
    await process(story.runtime)
    frozen = (await queue_status(story))["frozen"]
    assert (frozen["kind"], frozen["reason"], frozen["by"]) == (
        "frozen", "release 2.4 is being cut", "dana",
    )  # fmt: skip
    page = await (await story.client.get(f"/repos/{REPO}")).text()
    assert "main is frozen: base does not move." in page
    assert "release 2.4 is being cut — by dana" in page

    cand = make_candidate(remote, "pr-1", "f1.txt", "1\n")
    await story.post(cand)
    await process(story.runtime)
    await until(lambda: held(story), "the checked candidate to wait")
    waiting = await held(story)
    assert waiting is not None
    assert (waiting["slug"], waiting["base_sha"]) == ("pr-1", start)
    assert waiting["hold"]["reason"] == "release 2.4 is being cut"
    assert remote.rev("main") == start  # checked, pushed as its integration branch, not landed
    assert (await items(story.runtime))["pr-1"].status is Status.IN_PROGRESS
    page = await (await story.client.get(f"/repos/{REPO}")).text()
    assert "pr-1 is checked and waits to land" in page

    await control(story, "unfreeze", by="dana")
    await process(story.runtime)  # folds it and wakes the waiting integrator
    await asyncio.wait_for(story.hook.idle(), timeout=30)
    assert (await items(story.runtime))["pr-1"].status is Status.INTEGRATED
    assert remote.parents(remote.rev("main")) == [start, cand.sha]
    after = await queue_status(story)
    assert (after["frozen"], after["held"]) == (None, None)


async def test_a_freeze_window_holds_base_by_the_injected_clock(story: Story) -> None:
    # Wednesday 10:00 UTC: inside "Wed 09:00-Wed 11:00", outside "Sat 00:00-Mon 06:00".
    now = [datetime(2026, 11, 25, 10, 0, tzinfo=UTC)]
    story.runtime.clock = lambda: now[0]
    story.manage(
        checks={"commands": ["true"]},
        freeze={"windows": ["Sat 00:00-Mon 06:00 UTC", "Wed 09:00-Wed 11:00 UTC"],
                "recheck_seconds": 0.05},
    )  # fmt: skip
    remote = story.remote
    start = remote.rev("main")
    await story.post(make_candidate(remote, "pr-1", "f1.txt", "1\n"))
    await process(story.runtime)
    await until(lambda: held(story), "the checked candidate to wait")
    frozen = (await queue_status(story))["frozen"]
    assert frozen["kind"] == "window"
    assert frozen["reason"] == "freeze window Wed 09:00-Wed 11:00 UTC"
    assert frozen["until"] == "2026-11-25T11:00:00+00:00"
    assert remote.rev("main") == start
    now[0] = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # the window is in the past now
    await asyncio.wait_for(story.hook.idle(), timeout=30)
    assert (await items(story.runtime))["pr-1"].status is Status.INTEGRATED
    assert (await queue_status(story))["frozen"] is None


async def test_a_freeze_window_in_the_future_lets_base_move(story: Story) -> None:
    story.runtime.clock = lambda: datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # a Wednesday
    story.manage(checks={"commands": ["true"]}, freeze={"windows": ["Sat 00:00-Mon 06:00 UTC"]})
    start = story.remote.rev("main")
    await story.run(make_candidate(story.remote, "pr-1", "f1.txt", "1\n"))
    assert (await items(story.runtime))["pr-1"].status is Status.INTEGRATED
    assert story.remote.log("main")[1] == start
    assert (await queue_status(story))["frozen"] is None


async def test_a_red_base_closes_the_queue_once_and_a_fixing_push_reopens_it(
    story: Story,
) -> None:
    story.manage(
        checks={"commands": ["true"]},
        clearance={"commands": ["test ! -e broken.txt"]},
        freeze={"recheck_seconds": 0.05},
    )
    remote = story.remote
    cand = make_candidate(remote, "pr-1", "f1.txt", "1\n")
    red = remote.branch_with("main", "broken.txt", "oops\n")  # pushed straight to base
    await story.post(cand)
    await process(story.runtime)
    await until(lambda: held(story), "the checked candidate to wait")
    assert remote.rev("main") == red
    await process(story.runtime)  # fold mergebot's own queue_frozen
    frozen = (await queue_status(story))["frozen"]
    assert (frozen["kind"], frozen["by"], frozen["sha"], frozen["check"]) == (
        "red_base", "mergebot", red, "test ! -e broken.txt",
    )  # fmt: skip
    assert frozen["reason"] == f"main is red: test ! -e broken.txt failed on {red[:7]}"

    git(remote.work, "rm", "-q", "broken.txt")
    git(remote.work, "commit", "-q", "-m", "fix main")
    green = remote.push("main")
    await asyncio.wait_for(story.hook.idle(), timeout=30)
    found = (await items(story.runtime))["pr-1"]
    assert found.status is Status.INTEGRATED
    assert remote.parents(remote.rev("main")) == [green, cand.sha]
    controls = [
        (e.envelope.name.value, e.envelope.payload.get("kind"), e.envelope.payload.get("sha"))
        async for e in story.runtime.eventlog.replay(repo=REPO)
        if e.envelope.name.value.startswith("queue_")
    ]
    assert controls == [("queue_frozen", "clearance", red), ("queue_unfrozen", "clearance", green)]
    await process(story.runtime)
    assert (await queue_status(story))["frozen"] is None


async def test_freeze_api_needs_the_token_and_a_reason(story: Story) -> None:
    story.manage()
    url = f"/api/repos/{REPO}/freeze"
    assert (await story.client.post(url, json={"reason": "x"})).status == 401
    missing = await story.client.post(url, json={}, headers=AUTH)
    assert missing.status == 422
    assert "reason" in await missing.text()
    past = await story.client.post(
        url, json={"reason": "x", "until": "2001-01-01T00:00Z"}, headers=AUTH
    )
    assert past.status == 422
    assert "is in the past" in await past.text()
    other = await story.client.post(
        "/api/repos/acme/other/freeze", json={"reason": "x"}, headers=AUTH
    )
    assert other.status == 404
    assert [e async for e in story.runtime.eventlog.replay(repo=REPO)] == []
