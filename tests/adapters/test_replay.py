"""`mergebot replay` rebuilds projection and queue from the log alone and finds any drift."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from mergebot.config import ServerConfig
from mergebot.queue import Status
from mergebot.rebuild import replay
from mergebot.runtime import Runtime
from mergebot.store.keys import Keys
from mergebot.store.queue import QueueStore
from tests.brainkit import emit, manage, process, queue_items
from tests.factories import REPO
from tests.unit.test_readiness import approve, dismiss, finalize, push, raw_event

ROOT = Path(__file__).resolve().parents[2]
OTHER = "acme/gadgets"


def random_events(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """A messy history: many slugs, re-pushes, dismissals, withdrawals, blocks and resumes."""
    out = []
    for _ in range(count):
        repo = rng.choice([REPO, REPO, OTHER])
        n = rng.randint(1, 30)
        slug, branch = f"pr-{n}", f"feature/{n}"
        sha = f"{n:02d}{rng.randint(0, 2)}".ljust(40, "f")
        minute = rng.randint(0, 59)
        reviewer = rng.choice(["alice", "bob", "carol"])
        kind = rng.choices(
            ["approve", "dismiss", "finalize", "push", "withdraw", "block", "resume", "done"],
            weights=[6, 1, 5, 5, 0.5, 1, 1, 0.3],
        )[0]
        common = {"repo": repo, "slug": slug}
        match kind:
            case "approve":
                ev = approve(reviewer, rng.choice([sha, None]), minute, **common)
            case "dismiss":
                ev = dismiss(reviewer, minute, **common)
            case "finalize":
                ev = finalize(sha, minute, branch, **common)
            case "push":
                ev = push(sha, minute, branch, repo=repo)
            case "withdraw":
                ev = raw_event("candidate_withdrawn", at=_at(minute), reason="closed", **common)
            case "block":
                ev = raw_event(
                    "integration_blocked", branch=branch, sha=sha, blocked_at=_at(minute),
                    followup_id=f"{slug}-integration-blocked-{sha[:7]}", **common,
                )  # fmt: skip
            case "resume":
                ev = raw_event("resume_requested", at=_at(minute), **common)
            case _:
                ev = raw_event(
                    "integration_completed", branch=branch, sha=sha, integrated_at=_at(minute),
                    **common,
                )  # fmt: skip
        out.append(ev)
    return out


def _at(minute: int) -> str:
    return f"2026-11-25T11:{minute:02d}:00+00:00"


async def test_replay_reproduces_the_stored_queue_after_1000_random_events(
    runtime: Runtime,
) -> None:
    runtime.keys = Keys(prefix=runtime.keys.prefix, partitions=3)
    runtime.eventlog.keys = runtime.keys
    manage(runtime, REPO, OTHER)
    rng = random.Random(20261125)
    events = random_events(rng, 1000)
    sent = 0
    while sent < len(events):  # live: arrivals in bursts, each folded as it comes
        size = rng.randint(1, 40)
        chunk = events[sent : sent + size]
        await emit(runtime, *chunk, ids=[f"ev-{sent + i}" for i in range(len(chunk))])
        await process(runtime)
        sent += size
    assert await runtime.eventlog.length() == 1000
    stored = await queue_items(runtime)
    assert len(stored) > 5
    assert {i.status for i in stored} >= {Status.QUEUED, Status.CANCELLED}

    report = await replay(runtime)

    assert report.entries == 1000
    assert [r.differences for r in report.repos] == [[], []]
    assert await queue_items(runtime) == stored  # a report-only replay changes nothing
    leftovers = [k async for k in runtime.redis.scan_iter(match=f"{runtime.keys.prefix}:replay-*")]
    assert leftovers == []


async def _tampered(runtime: Runtime) -> str:
    manage(runtime)
    await emit(
        runtime, approve(), finalize(), push(), approve(sha="b" * 40, slug="pr-2"),
        finalize("b" * 40, slug="pr-2", branch="feature/two"),
        push("b" * 40, branch="feature/two"),
    )  # fmt: skip
    await process(runtime)
    items = await queue_items(runtime)
    victim = items[0].id
    # Drift: an item cancelled behind the log's back.
    await QueueStore(runtime.redis, runtime.keys).transition(
        REPO, "main", victim, Status.CANCELLED, cause="manual meddling"
    )
    return victim


async def test_replay_reports_drift_and_apply_repairs_it(runtime: Runtime) -> None:
    victim = await _tampered(runtime)
    report = await replay(runtime)
    [repo] = report.repos
    assert repo.differences == [f"item {victim}: stored cancelled, rebuilt queued"]
    fixed = await replay(runtime, apply=True)
    assert fixed.repos[0].applied
    assert [i.status for i in await queue_items(runtime)] == [Status.QUEUED, Status.QUEUED]
    assert (await replay(runtime)).repos[0].differences == []


async def test_apply_waits_for_a_running_integration(runtime: Runtime) -> None:
    await _tampered(runtime)
    from mergebot.store.lease import Lease  # noqa: PLC0415

    assert await Lease(runtime.redis, runtime.keys, REPO, "main", "integrator-1").acquire()
    report = await replay(runtime, apply=True)
    assert not report.repos[0].applied
    assert report.repos[0].skipped is not None
    assert "integrator-1" in report.repos[0].skipped


async def test_in_progress_item_is_in_flight_not_a_difference(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, approve(), finalize(), push())
    await process(runtime)
    [item] = await queue_items(runtime)
    await QueueStore(runtime.redis, runtime.keys).transition(
        REPO, "main", item.id, Status.IN_PROGRESS, cause="picked"
    )
    [repo] = (await replay(runtime)).repos
    assert repo.differences == []
    assert repo.in_flight == [item.id]


async def test_replay_command_exit_codes(
    runtime: Runtime, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await _tampered(runtime)
    config = tmp_path / "mergebot.toml"
    config.write_text(f'[repos."{REPO}"]\nremote = "{tmp_path / "nowhere.git"}"\n')
    env = {**cli_env, "MERGEBOT_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "mergebot", "replay", "--repo", REPO]
    # Without git the rebuilt candidates wait on git, so the stored queue differs: exit 2.
    found = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    assert found.returncode == 2, found.stderr
    assert "differs from the log" in found.stdout
    as_json = subprocess.run(
        [*cmd, "--json"], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert json.loads(as_json.stdout)[0]["repo"] == REPO
    bad = subprocess.run(
        [sys.executable, "-m", "mergebot", "replay", "--repo", "not a repo"],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "is not a repo name" in bad.stderr
    assert ServerConfig  # imported for symmetry with other CLI tests
