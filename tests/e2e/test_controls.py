"""Queue controls end to end on a real bare remote: priorities reorder the next integrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mergebot.queue import Status
from tests.e2e.test_integrator import AUTH, Story, story
from tests.integrationkit import REPO, T0, items, make_candidate, outcome_events, process
from tests.waiting import until

__all__ = ["story"]  # the fixture


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
