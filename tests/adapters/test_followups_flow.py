"""Follow-ups from the event log: created once per block, chained per slug, resolved when the
slug lands, claimable over the API, exported by the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot.followups import FollowupStatus, claim
from mergebot.followups_service import FollowupConsumer
from mergebot.main import create_app, main
from mergebot.runtime import Runtime
from mergebot.store.followups import FollowupStore
from tests.chatstandin import ChatStandIn
from tests.conftest import API_TOKEN
from tests.notifykit import REPO, Lifecycle, configure, drain, notifier

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SHA_A, SHA_B, SHA_C = "a1" * 20, "b2" * 20, "c3" * 20
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


async def _two_blocks_then_landed(runtime: Runtime, *, land: bool = True) -> list[str]:
    configure(runtime, [])
    n = notifier(runtime, ChatStandIn())
    life = Lifecycle(runtime)
    await life.queued(SHA_A)
    await life.started()
    first = await life.blocked("merge_conflict", {"files": ["src/app.py"], "message": "CONFLICT"})
    await drain(n)
    await life.fixed_and_resumed(SHA_B)
    await life.started()
    second = await life.blocked(
        "checks_failed",
        {"checks": [{"name": "tests", "kind": "command", "state": "failed",
                     "output_tail": "FAILED test_x\n"}], "message": "tests failed"},
    )  # fmt: skip
    await drain(n)
    if land:
        await life.fixed_and_resumed(SHA_C)
        await life.started()
        await life.completed()
        await drain(n)
    await n.close()
    return [first, second]


async def test_each_block_is_a_followup_linked_to_the_previous_and_resolved_on_landing(
    runtime: Runtime,
) -> None:
    first, second = await _two_blocks_then_landed(runtime)
    store = FollowupStore(runtime.redis, runtime.keys)
    a, b = await store.query(REPO)
    assert (a.id, b.id) == (first, second)
    assert (a.previous_id, b.previous_id) == (None, first)
    assert b.info().checks[0].output == "FAILED test_x\n"
    assert {a.status, b.status} == {FollowupStatus.RESOLVED}
    assert b.resolved_by == "mergebot"
    assert b.resolution is not None
    assert b.resolution.startswith("integrated as ")


async def test_a_redelivered_block_does_not_reset_a_claim(runtime: Runtime) -> None:
    [first, _] = await _two_blocks_then_landed(runtime, land=False)
    store = FollowupStore(runtime.redis, runtime.keys)
    await store.update(REPO, first, lambda f: claim(f, "bob", f.created_at))
    blocks = [
        e async for e in runtime.eventlog.replay() if e.envelope.name == "integration_blocked"
    ]
    entry = blocks[0]
    await FollowupConsumer(runtime).handle_event(entry.envelope)
    stored = await store.get(REPO, first)
    assert stored is not None
    assert (stored.status, stored.claimed_by) == (FollowupStatus.CLAIMED, "bob")


@pytest.fixture
async def client(aiohttp_client: MakeClient, runtime: Runtime) -> Client:
    return await aiohttp_client(create_app(runtime))


async def test_api_lists_with_filters_and_claims_then_resolves(
    runtime: Runtime, client: Client
) -> None:
    first, second = await _two_blocks_then_landed(runtime, land=False)
    listed = await (await client.get("/api/followups", params={"repo": REPO})).json()
    assert [f["id"] for f in listed["followups"]] == [first, second]
    opened = await (await client.get("/api/followups", params={"status": "open"})).json()
    assert len(opened["followups"]) == 2
    future = await client.get("/api/followups", params={"since": "2999-01-01T00:00:00+00:00"})
    assert (await future.json())["followups"] == []

    claimed = await client.post(f"/api/followups/{second}/claim", json={"by": "bob"}, headers=AUTH)
    assert claimed.status == 200
    body = await claimed.json()
    assert (body["status"], body["claimed_by"]) == ("claimed", "bob")
    assert body["claimed_at"]
    taken = await client.post(f"/api/followups/{second}/claim", json={"by": "eve"}, headers=AUTH)
    assert taken.status == 409
    assert "already claimed by bob" in (await taken.json())["error"]
    done = await client.post(
        f"/api/followups/{second}/resolve", json={"by": "bob", "resolution": "flaky"}, headers=AUTH
    )
    assert (await done.json())["status"] == "resolved"
    claimed_list = await client.get("/api/followups", params={"status": "resolved"})
    assert [f["id"] for f in (await claimed_list.json())["followups"]] == [second]


async def test_api_refuses_bad_input_and_changes_nothing(runtime: Runtime, client: Client) -> None:
    [first, _] = await _two_blocks_then_landed(runtime, land=False)
    assert (await client.post(f"/api/followups/{first}/claim", json={"by": "bob"})).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (
        await client.post(f"/api/followups/{first}/claim", json={"by": "bob"}, headers=wrong)
    ).status == 401
    assert (await client.post(f"/api/followups/{first}/claim", json={}, headers=AUTH)).status == 422
    assert (
        await client.post(f"/api/followups/{first}/claim", data=b"{nope", headers=AUTH)
    ).status == 400
    assert (
        await client.post("/api/followups/nope/claim", json={"by": "bob"}, headers=AUTH)
    ).status == 404
    assert (await client.get("/api/followups", params={"status": "lost"})).status == 400
    assert (await client.get("/api/followups", params={"since": "yesterday"})).status == 400
    assert (await client.get("/api/followups", params={"repo": "../etc"})).status == 400
    stored = await FollowupStore(runtime.redis, runtime.keys).get(REPO, first)
    assert stored is not None
    assert stored.status is FollowupStatus.OPEN


async def test_cli_writes_one_markdown_todo_per_followup(
    runtime: Runtime, cli_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = await _two_blocks_then_landed(runtime, land=False)
    out = tmp_path / "todos"
    code = await asyncio.to_thread(main, ["followups", "--repo", REPO, "--out", str(out)])
    assert code == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{first}.md", f"{second}.md"])
    todo = (out / f"{second}.md").read_text()
    assert todo.startswith("# ⛔ acme/widgets pr-42: checks failed")
    assert f"| Previous follow-up | [`{first}`]" in todo
    assert "mergebot resume acme/widgets pr-42" in todo
    assert "FAILED test_x" in todo
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["followups", "--format", "json", "--status", "open"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [f["id"] for f in printed] == [first, second]


async def test_cli_refuses_a_bad_repo_name(cli_env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        await asyncio.to_thread(main, ["followups", "--repo", "not a repo"])
    assert exit_info.value.code == 2


async def test_follow_ups_are_kept_without_any_notifier_running(runtime: Runtime) -> None:
    configure(runtime, [])  # no chat sink, and no notifier reads the log
    life = Lifecycle(runtime)
    await life.queued(SHA_A)
    await life.started()
    blocked = await life.blocked("merge_conflict", {"files": ["a.py"], "message": "CONFLICT"})
    followups = FollowupConsumer(runtime, consumer="only-followups")
    assert await followups.intake(runtime.keys.partition_of(REPO)) == 1
    store = FollowupStore(runtime.redis, runtime.keys)
    [opened] = await store.query(REPO)
    assert (opened.id, opened.status) == (blocked, FollowupStatus.OPEN)
