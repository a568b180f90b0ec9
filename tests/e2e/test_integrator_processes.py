"""The integrator as real processes: killed (SIGKILL) at every step of its workflow, two of them
started at once, and `mergebot serve` merging what POST /events made ready."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mergebot.config import parse_server_config
from mergebot.events import envelope_for, parse_event
from mergebot.integrator import CRASH_ENV, STEPS
from mergebot.queue import Status
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.conftest import API_TOKEN, free_port, settings_for
from tests.gitutil import GitRemote, git
from tests.integrationkit import (
    REPO,
    Cand,
    candidate_events,
    enable_ref_log,
    integration_refs,
    items,
    main_updates,
    make_candidate,
    outcome_events,
    post_events,
    process,
    server_toml,
)
from tests.waiting import until, wait_healthy

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
async def world(
    redis: RedisClient, keys: Keys, redis_url: str, remote: GitRemote, tmp_path: Path
) -> AsyncIterator[World]:
    enable_ref_log(remote)
    world = World(redis, keys, redis_url, remote, tmp_path)
    try:
        yield world
    finally:
        world.runtime.close_mirrors()


class World:
    """A managed repo whose candidates are queued by the processor in this process, and
    integrated by child processes."""

    def __init__(
        self, redis: RedisClient, keys: Keys, redis_url: str, remote: GitRemote, tmp: Path
    ) -> None:
        self.remote = remote
        self.config = tmp / "mergebot.toml"
        self.data = tmp / "data"
        self.keys = keys
        self.redis_url = redis_url
        self.runtime: Runtime = build_runtime(
            settings_for(tmp, data_dir=tmp / "processor-data"),
            parse_server_config("", "mergebot.toml"),
            redis,
            keys,
        )

    def configure(self, **table: Any) -> None:
        text = server_toml(self.remote, lease_ttl_seconds=1, lease_renew_seconds=0.25, **table)
        self.config.write_text(text)
        self.runtime.server_config = parse_server_config(text, str(self.config))

    async def queue(self, *cands: Cand) -> None:
        raws = [e for n, c in enumerate(cands) for e in candidate_events(c, n)]
        envs = [envelope_for(parse_event(r).event, source="test") for r in raws]
        await self.runtime.eventlog.append_many(envs)
        await process(self.runtime)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            MERGEBOT_REDIS_URL=self.redis_url,
            MERGEBOT_KEY_PREFIX=self.keys.prefix,
            MERGEBOT_DATA_DIR=str(self.data),
            MERGEBOT_CONFIG=str(self.config),
            # Checks wait on files in pytest's tmp dir (0700, and hidden by a sandbox's own
            # /tmp): they run as this user, unsandboxed. Isolation: test_check_isolation.py.
            MERGEBOT_CHECK_USER=str(os.geteuid()),
            MERGEBOT_CHECK_SANDBOX="none",
            **extra,
        )
        return env

    def drain(self, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "mergebot.drain", "--repo", REPO],
            env=self.env(**extra),
            cwd=self.data.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def lease_gone(self, timeout: float = 15) -> None:
        """The killed holder's lease runs out (its key expires with it)."""
        lease = self.keys.lease(REPO, "main")

        async def expired() -> bool:
            return not await self.runtime.redis.exists(lease)

        await until(expired, "the killed holder's lease to expire", timeout=timeout, interval=0.05)

    def worktrees(self) -> list[Path]:
        root = self.data / "worktrees"
        return [p for d in root.iterdir() for p in d.iterdir()] if root.exists() else []


def _result(process: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


def _second_parents(remote: GitRemote) -> list[str]:
    return [p[1] for p in (remote.parents(c) for c in remote.log("main")) if len(p) == 2]


_REBUILT = [("pr-1", "queued"), ("pr-1", "integrated"), ("pr-2", "blocked"),
            ("pr-3", "integrated")]  # fmt: skip
_FOUND_ON_BASE = [("pr-1", "integrated"), ("pr-2", "blocked"), ("pr-3", "integrated")]
_REST = [("pr-2", "blocked"), ("pr-3", "integrated")]
# What the next integrator does, by the step its predecessor died at (pr-1 lands, then pr-2
# conflicts with it): rebuild, finish from the record / find the commit on base, or go on.
SECOND_RUN = {
    "picked": _REBUILT,
    "built": _REBUILT,
    "branch_pushed": _REBUILT,
    "checked": _REBUILT,
    "base_pushed": _FOUND_ON_BASE,
    "landed_recorded": _FOUND_ON_BASE,
    "completed_emitted": _FOUND_ON_BASE,
    "integrated": _REST,
    "blocked_emitted": _REST,
    "blocked": [("pr-3", "integrated")],
    "cleaned": _REST,
}


def test_every_step_is_covered() -> None:
    assert set(SECOND_RUN) == set(STEPS)


@pytest.mark.parametrize(("depth", "batch"), [(1, 1), (3, 1), (1, 3)])
@pytest.mark.parametrize("step", STEPS)
async def test_killed_at_any_step_the_next_integrator_finishes_each_candidate_once(
    world: World, step: str, depth: int, batch: int, tmp_path: Path
) -> None:
    """pr-1 lands, then pr-2 conflicts with it, pr-3 lands. At depth 3 pr-2's car fails at its
    build and pr-3's car is rebuilt on pr-1's. In a batch of three the batch conflicts, is
    bisected, pr-1 lands alone, pr-2 is known to conflict, pr-3 is checked alone. A crash anywhere
    loses nothing, merges nothing twice, and main only ever moves to a commit checked green."""
    remote = world.remote
    green = tmp_path / "green"
    world.configure(
        pipeline={"depth": depth},
        batch={"max_size": batch},
        checks={"commands": [f'test -f README.md && git rev-parse HEAD >> "{green}"']},
    )
    start = remote.rev("main")
    one = make_candidate(remote, "pr-1", "one.txt", "1\n")
    clash = make_candidate(remote, "pr-2", "one.txt", "not one\n")  # conflicts once pr-1 landed
    three = make_candidate(remote, "pr-3", "three.txt", "3\n")
    await world.queue(one, clash, three)

    killed = world.drain(**{CRASH_ENV: step})
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, f"the integrator never reached {step}"
    main_at_crash = remote.rev("main")
    await world.lease_gone()

    result = _result(world.drain())

    assert result["status"] == "done"
    if depth == 1 and batch == 1:
        handled = [(o["item"].split(":")[0], o["status"]) for o in result["outcomes"]]
        assert handled == SECOND_RUN[step]
    found = await items(world.runtime)
    assert {s: i.status for s, i in found.items()} == {
        "pr-1": Status.INTEGRATED, "pr-2": Status.BLOCKED, "pr-3": Status.INTEGRATED,
    }  # fmt: skip
    assert found["pr-2"].followup_id == f"pr-2-integration-blocked-{clash.sha[:7]}"
    events = [(e["name"], e["slug"]) for e in await outcome_events(world.runtime)]
    assert sorted(events) == [
        ("integration_blocked", "pr-2"),
        ("integration_completed", "pr-1"),
        ("integration_completed", "pr-3"),
    ]
    # Each candidate is on main exactly once, and main only ever moved by fast-forward.
    assert sorted(_second_parents(remote)) == sorted([one.sha, three.sha])
    updates = main_updates(remote)
    assert len(updates) == 2
    checked_green = set(green.read_text().split())
    for old, new in updates:
        git(remote.bare, "merge-base", "--is-ancestor", old, new)
        assert new in checked_green, "main moved to a commit that was not checked green"
    git(remote.bare, "merge-base", "--is-ancestor", main_at_crash, "main")
    assert remote.log("main")[-1] == start
    assert integration_refs(remote) == []
    assert world.worktrees() == []


def _merged(remote: GitRemote, start: str, commit: str) -> list[str]:
    """The candidate commits merged from `start` to `commit`, oldest first."""
    chain = git(remote.bare, "rev-list", "--first-parent", "--reverse", f"{start}..{commit}")
    return [remote.parents(c)[-1] for c in chain.split()]


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize(
    "step", ["built#2", "branch_pushed#3", "checked#1", "base_pushed#1", "blocked_emitted#1"]
)
async def test_killed_mid_bisection_the_next_integrator_continues_it(
    world: World, step: str, depth: int, tmp_path: Path
) -> None:
    """A batch of four with a culprit (pr-2) fails and is bisected; the integrator is killed
    somewhere in the bisection. The next one continues it from the train record: the batch is
    not formed and checked again, every candidate ends once, the culprit never reaches main and
    main only moves to commits checked green."""
    remote = world.remote
    runs, green = tmp_path / "runs", tmp_path / "green"
    world.configure(
        pipeline={"depth": depth},
        batch={"max_size": 4},
        checks={"commands": [f'git rev-parse HEAD >> "{runs}"',
                             f'! ls bad-*.txt >/dev/null 2>&1 && git rev-parse HEAD >> "{green}"']},
    )  # fmt: skip
    start = remote.rev("main")
    cands = [
        make_candidate(remote, f"pr-{n}", "bad-2.txt" if n == 2 else f"f{n}.txt", f"{n}\n")
        for n in (1, 2, 3, 4)
    ]
    await world.queue(*cands)

    killed = world.drain(**{CRASH_ENV: step})
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, f"the integrator never reached {step}"
    await world.lease_gone()

    result = _result(world.drain())

    assert result["status"] == "done"
    found = await items(world.runtime)
    assert {s: i.status for s, i in found.items()} == {
        "pr-1": Status.INTEGRATED, "pr-2": Status.BLOCKED,
        "pr-3": Status.INTEGRATED, "pr-4": Status.INTEGRATED,
    }  # fmt: skip
    events = sorted((e["name"], e["slug"]) for e in await outcome_events(world.runtime))
    assert events == sorted([("integration_blocked", "pr-2")] + [
        ("integration_completed", f"pr-{n}") for n in (1, 3, 4)])  # fmt: skip
    # The red batch was checked once: the next integrator went on with its halves.
    checked = runs.read_text().split()
    batch = [c.sha for c in cands]
    assert sum(1 for c in checked if _merged(remote, start, c) == batch) == 1
    assert sorted(_second_parents(remote)) == sorted(c.sha for c in cands if c.slug != "pr-2")
    checked_green = set(green.read_text().split())
    for old, new in main_updates(remote):
        git(remote.bare, "merge-base", "--is-ancestor", old, new)
        assert new in checked_green, "main moved to a commit that was not checked green"
    assert git(remote.bare, "log", "--format=%H", "main", "--", "bad-2.txt") == ""
    assert remote.log("main")[-1] == start
    assert integration_refs(remote) == []
    assert world.worktrees() == []


async def test_two_integrators_at_once_exactly_one_works(world: World, tmp_path: Path) -> None:
    go = tmp_path / "go"
    world.configure(checks={"commands": [f"while [ ! -f {go} ]; do sleep 0.05; done"]})
    cands = [make_candidate(world.remote, f"pr-{n}", f"f{n}.txt", f"{n}\n") for n in (1, 2)]
    await world.queue(*cands)

    first, second = world.drain(), world.drain()
    await until(lambda: first.poll() is not None or second.poll() is not None,
                "one integrator to give way", timeout=60, interval=0.05)  # fmt: skip
    waiting, working = (first, second) if first.poll() is not None else (second, first)
    assert working.poll() is None  # still holding the lease, blocked in its checks
    gave_way = _result(waiting)
    go.write_text("")
    worked = _result(working)

    assert gave_way["status"] == "busy"
    assert gave_way["outcomes"] == []
    assert gave_way["message"] == f"lease held by {worked['owner']}"
    assert [o["status"] for o in worked["outcomes"]] == ["integrated", "integrated"]
    assert sorted(_second_parents(world.remote)) == sorted(c.sha for c in cands)
    events = await outcome_events(world.runtime)
    assert sorted(e["slug"] for e in events) == ["pr-1", "pr-2"]


async def test_serve_merges_what_post_events_made_ready(world: World) -> None:
    world.configure()
    remote = world.remote
    start = remote.rev("main")
    cand = make_candidate(remote, "pr-1", "served.txt", "served\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mergebot", "serve", "--port", str(port)],
        env=world.env(MERGEBOT_API_TOKEN=API_TOKEN),
        cwd=world.data.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(url, server)
        assert post_events(url, candidate_events(cand, 0)) == 201

        async def integrated() -> bool:
            found = (await items(world.runtime)).get("pr-1")
            return found is not None and found.status is Status.INTEGRATED

        await until(integrated, "pr-1 to be integrated", timeout=30, interval=0.05)
        found = (await items(world.runtime))["pr-1"]
        assert remote.parents(remote.rev("main")) == [start, cand.sha]
        assert found.integration.main_after == remote.rev("main")
    finally:
        server.send_signal(signal.SIGTERM)
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err[-3000:]
    assert "integration_started repo=acme/widgets" in err
