"""`mergebot status` and GET /api/repos/<owner>/<repo>/queue: one object, SPEC §9's shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from mergebot.commands.status import render as render_status
from mergebot.main import create_app
from mergebot.queue import Status
from mergebot.runtime import Runtime, build_runtime
from mergebot.status import repo_status
from mergebot.store.connection import connect
from mergebot.store.lease import Lease
from mergebot.store.notify import NotifyStore
from mergebot.store.projection import ProjectionStore
from mergebot.store.queue import QueueStore
from tests.brainkit import emit, manage, process, queue_items
from tests.conftest import settings_for
from tests.factories import REPO, SHA_B
from tests.unit.test_readiness import approve, finalize, push, raw_event

ROOT = Path(__file__).resolve().parents[2]
SHA_C = "c" * 40


async def scenario(runtime: Runtime) -> None:
    """pr-1 queued first, pr-2 queued second, pr-3 waiting for a push, pr-4 blocked."""
    manage(runtime)
    await emit(
        runtime,
        approve(), finalize(), push(),
        approve(sha=SHA_B, slug="pr-2"), finalize(SHA_B, 4, "feature/two", slug="pr-2"),
        push(SHA_B, 3, "feature/two"),
        approve(sha=SHA_C, slug="pr-3"), finalize(SHA_C, 5, "feature/three", slug="pr-3"),
        push(SHA_C, 1, "feature/three", remote="upstream"),
    )  # fmt: skip
    await process(runtime)


async def test_status_lists_queue_positions_waiting_reasons_and_lease(runtime: Runtime) -> None:
    await scenario(runtime)
    first = (await queue_items(runtime))[0]
    lease = Lease(runtime.redis, runtime.keys, REPO, "main", "integrator-7")
    assert await lease.acquire()
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", first.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", first.id, Status.BLOCKED, cause="conflict",
        followup_id="pr-1-integration-blocked-aaaaaaa", reasons=["merge conflict in a.txt"],
    )  # fmt: skip
    notify = NotifyStore(runtime.redis, runtime.keys)
    for letter, repo in (("x", REPO), ("y", REPO), ("z", "acme/other")):
        await notify.dead_letter({"id": letter, "repo": repo, "sink": "s", "at": "2026-01-01"})

    status = await repo_status(runtime, REPO)

    assert {k: status[k] for k in ("repo", "base", "mode", "dead_letters")} == {
        "repo": REPO, "base": "main", "mode": "live", "dead_letters": 2,
    }  # fmt: skip
    assert status["lease"]["owner"] == "integrator-7"
    rows = [(c["slug"], c["status"], c["position"]) for c in status["candidates"]]
    assert rows == [("pr-1", "blocked", None), ("pr-2", "queued", 1), ("pr-3", "waiting", None)]
    blocked, _queued, waiting = status["candidates"]
    assert blocked["followup_id"] == "pr-1-integration-blocked-aaaaaaa"
    assert blocked["reasons"] == ["merge conflict in a.txt"]
    assert waiting["reason_codes"] == ["push_missing"]
    assert waiting["reasons"] == ["no branch_pushed of ccccccc to origin/feature/three"]
    assert status["ignored"] == {"other_remote": 1}
    assert status["recent_ignored"][0]["code"] == "other_remote"


async def test_positions_follow_ready_at_and_skip_others(runtime: Runtime) -> None:
    await scenario(runtime)
    await emit(runtime, raw_event("candidate_withdrawn", at="2026-11-25T10:30:00+00:00"))
    await process(runtime)
    status = await repo_status(runtime, REPO)
    assert [(c["slug"], c["position"]) for c in status["candidates"] if c["position"]] == [
        ("pr-2", 1)
    ]
    assert status["candidates"][-1]["status"] == "cancelled"  # recent finished items last


async def test_queue_api_serves_the_same_object(runtime: Runtime) -> None:
    await scenario(runtime)
    async with TestClient(TestServer(create_app(runtime))) as client:
        resp = await client.get(f"/api/repos/{REPO}/queue")
        assert resp.status == 200
        body = await resp.json()
        missing = await client.get("/api/repos/nobody/nothing/queue")
        assert missing.status == 404
        bad = await client.get("/api/repos/bad%20owner/x/queue")
        assert bad.status == 400
    expected = await repo_status(runtime, REPO)
    assert body == json.loads(json.dumps(expected))


async def test_queue_api_places_candidates_in_a_train_published_after_the_last_call(
    runtime: Runtime,
) -> None:
    await scenario(runtime)
    assert await Lease(runtime.redis, runtime.keys, REPO, "main", "integrator-7").acquire()
    car = {"position": 1, "members": [{"slug": "pr-2", "sha": SHA_B}], "on_base": True}

    def second(body: dict[str, Any]) -> dict[str, Any]:
        return next(c for c in body["candidates"] if c["slug"] == "pr-2")

    async with TestClient(TestServer(create_app(runtime))) as client:
        before = await (await client.get(f"/api/repos/{REPO}/queue")).json()
        # The train moves, the queue and the projection do not.
        await runtime.redis.hset(
            runtime.keys.train(REPO, "main"), mapping={"state": json.dumps({"cars": [car]})}
        )
        after = await (await client.get(f"/api/repos/{REPO}/queue")).json()
    assert (second(before)["car"], second(before)["stacked_on"]) == (None, None)
    assert (second(after)["car"], second(after)["stacked_on"]) == (1, "base")
    assert after == json.loads(json.dumps(await repo_status(runtime, REPO)))


async def test_queue_api_shows_what_another_process_wrote_on_the_very_next_call(
    runtime: Runtime, redis_url: str, tmp_path: Path
) -> None:
    """Several replicas serve the API: what one process caches must not hide another's write."""
    await scenario(runtime)
    other = build_runtime(
        settings_for(tmp_path / "other"), runtime.server_config, connect(redis_url), runtime.keys
    )
    other.git_facts = runtime.git_facts
    fresh = build_runtime(
        settings_for(tmp_path / "fresh"), runtime.server_config, runtime.redis, runtime.keys
    )
    [first, *_] = await queue_items(runtime)
    picked = QueueStore(other.redis, other.keys)
    car = {"position": 1, "members": [{"slug": "pr-2", "sha": SHA_B}], "on_base": True}
    writes = [
        lambda: picked.transition(REPO, "main", first.id, Status.IN_PROGRESS, cause="picked"),
        lambda: emit(other, push(SHA_C, 6, "feature/three")),  # pr-3's push: queued
        lambda: process(other, "other-consumer"),
        lambda: Lease(other.redis, other.keys, REPO, "main", "integrator-9").acquire(),
        lambda: other.redis.hset(
            other.keys.train(REPO, "main"), mapping={"state": json.dumps({"cars": [car]})}
        ),
    ]
    seen = []
    try:
        async with TestClient(TestServer(create_app(runtime))) as client:
            url = f"/api/repos/{REPO}/queue"
            await client.get(url)  # everything cached that can be
            for write in writes:
                await write()
                body = await (await client.get(url)).json()
                # What a process that never cached anything builds now:
                fresh.status_candidates.clear()
                fresh.status_placed.clear()
                assert body == json.loads(json.dumps(await repo_status(fresh, REPO)))
                seen.append(body)
    finally:
        await other.redis.aclose()
    rows = {c["slug"]: c["status"] for c in seen[-1]["candidates"]}
    assert rows[first.slug] == "in_progress"
    assert rows["pr-3"] == "queued"
    assert seen[-1]["lease"]["owner"] == "integrator-9"
    assert next(c for c in seen[-1]["candidates"] if c["slug"] == "pr-2")["car"] == 1


async def test_status_command_prints_json_and_text(
    runtime: Runtime, cli_env: dict[str, str], tmp_path: Path
) -> None:
    await scenario(runtime)
    config = tmp_path / "mergebot.toml"
    config.write_text(f'[repos."{REPO}"]\n')
    env = {**cli_env, "MERGEBOT_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "mergebot", "status"]
    as_json = subprocess.run(
        [*base, "--repo", REPO, "--json"], env=env, capture_output=True, text=True,
        check=False, cwd=ROOT,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    shown = json.loads(as_json.stdout)
    assert [c["slug"] for c in shown["candidates"]] == ["pr-1", "pr-2", "pr-3"]
    everything = subprocess.run(
        [*base, "--json"], env=env, capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert [s["repo"] for s in json.loads(everything.stdout)] == [REPO]
    text = subprocess.run(base, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    assert text.returncode == 0
    assert "#1" in text.stdout
    assert "no branch_pushed of ccccccc to origin/feature/three" in text.stdout
    assert "ignored events: other_remote=1" in text.stdout


async def test_status_parses_the_projection_again_only_after_it_changed(
    runtime: Runtime,
) -> None:
    await scenario(runtime)
    cache = runtime.projection_cache
    store = ProjectionStore(runtime.redis, runtime.keys)
    first = await cache.load(store, REPO)
    assert await cache.load(store, REPO) is first  # unchanged: not parsed again
    # The missing origin push of pr-3 arrives: the next status shows it, queued.
    await emit(runtime, push(SHA_C, 6, "feature/three"))
    await process(runtime)
    assert await cache.load(store, REPO) is not first
    rows = [(c["slug"], c["status"]) for c in (await repo_status(runtime, REPO))["candidates"]]
    assert ("pr-3", "queued") in rows
    # A projection replaced behind the processor's back (replay --apply renames a rebuilt hash
    # into place) is noticed too.
    await runtime.redis.delete(
        runtime.keys.projection(REPO),
        runtime.keys.projection_slugs(REPO),
        runtime.keys.projection_pushes(REPO),
    )
    assert (await cache.load(store, REPO)).candidates == {}


async def test_status_reuses_its_candidates_until_the_queue_or_the_projection_changes(
    runtime: Runtime,
) -> None:
    await scenario(runtime)
    await repo_status(runtime, REPO)
    cached = runtime.status_candidates[REPO, "main"]
    await repo_status(runtime, REPO)
    assert runtime.status_candidates[REPO, "main"] is cached  # nothing changed: not rebuilt
    # A queue change alone (the integrator takes an item; the projection is not saved):
    [item, *_] = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", item.id, Status.IN_PROGRESS, cause="picked")
    rows = [(c["slug"], c["status"]) for c in (await repo_status(runtime, REPO))["candidates"]]
    assert (item.slug, "in_progress") in rows


def test_status_text_keeps_a_300_file_conflict_on_one_short_line() -> None:
    files = ", ".join(f"src/module_{i:03d}.py" for i in range(300))
    status = {
        "repo": REPO, "base": "main", "mode": "live", "managed": True, "lease": None,
        "candidates": [{
            "slug": "pr-1", "branch": "feature/one", "sha": "a" * 40, "status": "blocked",
            "position": None, "reasons": [f"merge_conflict: merge conflict in {files}"],
            "followup_id": "pr-1-integration-blocked-aaaaaaa",
        }],
        "ignored": {}, "refusals": {"recent": []}, "dead_letters": 0,
    }  # fmt: skip
    [reason] = [line for line in render_status(status).splitlines() if line.startswith("      -")]
    assert reason.startswith("      - merge conflict: merge conflict in src/module_000.py")
    assert len(reason) <= 170
    assert reason.endswith("…")
