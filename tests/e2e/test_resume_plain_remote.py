"""Resume on a plain git remote, as a person does it: a candidate blocks on a conflict, the author
pushes a fix to the branch (nobody announces the push: there is no forge), approves it or not,
and runs `mergebot resume`. The fix lands and no second follow-up appears; without the approval
the CLI says who must approve which sha, and nothing is integrated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.integrator import IntegratorHook
from mergebot.main import create_app, main
from mergebot.queue import Status
from mergebot.runtime import Runtime
from tests.conftest import API_TOKEN
from tests.gitutil import GitRemote, git
from tests.integrationkit import (
    REPO,
    Cand,
    candidate_events,
    enable_ref_log,
    items,
    make_candidate,
    manage_remote,
    outcome_events,
    process,
    server_toml,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
Client = TestClient[web.Request, web.Application]


class World:
    def __init__(self, runtime: Runtime, remote: GitRemote, hook: IntegratorHook, client: Client):
        self.runtime, self.remote, self.hook, self.client = runtime, remote, hook, client

    async def post(self, events: list[dict[str, object]]) -> None:
        response = await self.client.post("/events", json=events, headers=AUTH)
        assert response.status == 201, await response.text()

    async def settle(self) -> None:
        """Fold what is in the log; wait for the integrator the READY hook may have started."""
        await process(self.runtime)
        await asyncio.wait_for(self.hook.idle(), timeout=60)

    async def blocked_on_a_conflict(self) -> Cand:
        """pr-1 changes README.md; main changes it too: pr-1 blocks with a follow-up."""
        clash = make_candidate(self.remote, "pr-1", "README.md", "theirs\n")
        self.remote.checkout("main", create=False)
        git(self.remote.work, "reset", "-q", "--hard", "origin/main")
        self.remote.commit("README.md", "ours\n", "main edits README")
        self.remote.push("main")
        await self.post(candidate_events(clash, 0))
        await self.settle()
        assert (await items(self.runtime))["pr-1"].status is Status.BLOCKED
        return clash

    def push_a_fix(self, clash: Cand) -> str:
        """The author merges main into the branch, resolving the conflict, and pushes."""
        remote = self.remote
        git(remote.work, "fetch", "-q", "origin")
        git(remote.work, "checkout", "-q", "-B", clash.branch, f"origin/{clash.branch}")
        git(remote.work, "merge", "-q", "-s", "ours", "origin/main", "-m", "merge main")
        return remote.push(clash.branch)


@pytest.fixture
async def world(
    runtime: Runtime,
    remote: GitRemote,
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> AsyncIterator[World]:
    enable_ref_log(remote)
    manage_remote(runtime, remote)
    config = tmp_path / "mergebot.toml"
    config.write_text(server_toml(remote))
    monkeypatch.setenv("MERGEBOT_CONFIG", str(config))  # the CLI reads the same server file
    hook = IntegratorHook(runtime)
    runtime.ready_hook = hook
    client = await aiohttp_client(create_app(runtime))
    try:
        yield World(runtime, remote, hook, client)
    finally:
        await hook.close()
        runtime.close_mirrors()


async def resume(capsys: pytest.CaptureFixture[str]) -> str:
    assert await asyncio.to_thread(main, ["resume", REPO, "pr-1", "--by", "bob"]) == 0
    return capsys.readouterr().out


async def test_a_pushed_and_approved_fix_lands_after_one_resume(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    clash = await world.blocked_on_a_conflict()
    fix = world.push_a_fix(clash)
    approval = candidate_events(Cand("pr-1", clash.branch, fix), 1)[-1]
    await world.post([approval])  # alice approves the fix (the log does not know it yet)

    out = await resume(capsys)
    assert f"moved on the remote to {fix[:7]}" in out
    assert f"mergebot re-queues {fix[:7]}" in out
    assert "the new head is approved" in out
    await world.settle()

    found = await items(world.runtime)
    assert found["pr-1"].sha == fix
    assert found["pr-1"].status is Status.INTEGRATED
    main_tip = world.remote.rev("main")
    assert git(world.remote.bare, "merge-base", "--is-ancestor", fix, main_tip) == ""
    blocks = [e for e in await outcome_events(world.runtime) if e["name"] == "integration_blocked"]
    assert len(blocks) == 1  # the old commit was not re-queued: no second follow-up


async def test_without_an_approval_the_cli_says_who_must_approve_which_sha(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    clash = await world.blocked_on_a_conflict()
    fix = world.push_a_fix(clash)

    out = await resume(capsys)
    assert f"moved on the remote to {fix[:7]}" in out
    assert (
        f"waiting for an approval: {fix[:7]} still needs 1 approval (1 required from distinct "
        f"reviewers); alice approved {clash.sha[:7]}, which does not count for {fix[:7]}: ask "
        f"alice (or another reviewer) to approve {fix}"
    ) in out
    await world.settle()
    blocks = [e for e in await outcome_events(world.runtime) if e["name"] == "integration_blocked"]
    assert len(blocks) == 1
    assert not [e for e in await outcome_events(world.runtime) if e["sha"] == fix]
    status = await asyncio.to_thread(main, ["status", "--repo", REPO, "--json"])
    assert status == 0
    assert "approvals_missing" in capsys.readouterr().out  # the new head waits for alice

    # A second resume before anything changed announces nothing new.
    again = await resume(capsys)
    assert "moved on the remote" not in again
