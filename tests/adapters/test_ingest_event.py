"""`mergebot ingest-event` stores exactly what the webhook stores, for the same payload files."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mergebot import integrator
from mergebot.commands import ingest_event
from mergebot.commands.ingest_event import IngestError, ingest
from mergebot.config import Settings, parse_server_config
from mergebot.forge.base import Permission
from mergebot.main import COMMANDS, create_app
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from tests import ghsupport as gh
from tests.ghsupport import REPO, SECRET, FakeForge

ROOT = Path(__file__).resolve().parents[2]
Client = TestClient[Any, Any]

PAYLOADS: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
    ("pull_request", "opened", lambda: gh.load("pull_request.opened")),
    ("pull_request", "reopened", lambda: gh.load("pull_request.reopened")),
    ("pull_request", "synchronize", lambda: gh.load("pull_request.synchronize")),
    ("pull_request", "ready_for_review", lambda: gh.load("pull_request.ready_for_review")),
    ("pull_request", "closed", lambda: gh.load("pull_request.closed")),
    ("pull_request", "converted_to_draft", lambda: gh.load("pull_request.converted_to_draft")),
    ("pull_request", "fork", gh.fork_opened),
    ("pull_request", "base-in", lambda: gh.base_changed("develop", gh.BASE)),
    ("pull_request", "base-away", lambda: gh.base_changed(gh.BASE, "develop")),
    ("pull_request", "labeled", lambda: gh.load("pull_request.labeled")),
    ("pull_request_review", "approved", lambda: gh.review("approved")),
    ("pull_request_review", "changes", lambda: gh.review("changes_requested")),
    ("pull_request_review", "dismissed", lambda: gh.load("pull_request_review.dismissed")),
    ("push", "branch", lambda: gh.load("push.branch_created")),
    ("push", "feature", gh.feature_push),
    ("push", "deleted", gh.feature_deleted),
    ("push", "tag", lambda: gh.load("push.tag_created")),
    ("issue_comment", "command", lambda: gh.pr_comment("/mergebot merge")),
    ("issue_comment", "edited", lambda: gh.pr_comment("/mergebot merge", action="edited")),
    ("check_suite", "completed", lambda: gh.load("check_suite.completed")),
]


def runtime_for(redis: RedisClient, keys: Keys) -> Runtime:
    config = parse_server_config(gh.SERVER_TOML, "mergebot.toml")
    return build_runtime(Settings(webhook_secret=SECRET), config, redis, keys)


def stored_view(envelopes: list[Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [(e.name, e.type, e.source, e.payload) for e in envelopes]


async def test_ingest_stores_what_the_webhook_stores(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    redis: RedisClient,
    keys: Keys,
) -> None:
    hook_keys = Keys(prefix=f"{keys.prefix}:hook")
    ingest_keys = Keys(prefix=f"{keys.prefix}:ingest")
    hook_rt, ingest_rt = runtime_for(redis, hook_keys), runtime_for(redis, ingest_keys)
    client = await aiohttp_client(create_app(hook_rt))
    compared = 0
    for index, (event, label, make) in enumerate(PAYLOADS):
        raw = gh.body_of(make())
        response = await client.post(
            "/webhook", data=raw, headers=gh.signed_headers(event, raw, f"delivery-{index}")
        )
        assert response.status in (200, 202), label
        result = await ingest(ingest_rt, event, raw, {"GITHUB_RUN_ID": str(1000 + index)})
        assert result.repo == REPO
        # 202: acknowledged without storing anything (ignored, or a check result that only
        # wakes a waiting integration); ingest-event must have stored nothing either.
        report = result.report
        stored_nothing = "ignored" in report or (
            not report.get("stored") and "command" not in report
        )
        assert stored_nothing == (response.status == 202), label
        compared += 1
    via_hook = [e.envelope async for e in EventLog(redis, hook_keys).replay()]
    via_ingest = [e.envelope async for e in EventLog(redis, ingest_keys).replay()]
    assert compared == len(PAYLOADS)
    assert len(via_hook) >= 20
    assert stored_view(via_ingest) == stored_view(via_hook)
    assert via_ingest[0].id == f"actions:{REPO}:1000:0"
    # The command went to each inbox once, with the same record.
    for k in (hook_keys, ingest_keys):
        assert await redis.xlen(k.commands()) == 1


async def test_same_run_twice_is_stored_once_and_without_run_id_the_content_decides(
    redis: RedisClient, keys: Keys, eventlog: EventLog
) -> None:
    runtime = runtime_for(redis, keys)
    raw = gh.body_of(gh.load("pull_request.opened"))
    first = await ingest(runtime, "pull_request", raw, {"GITHUB_RUN_ID": "77"})
    again = await ingest(runtime, "pull_request", raw, {"GITHUB_RUN_ID": "77"})
    assert [s["duplicate"] for s in first.report["stored"]] == [False, False]
    assert [s["duplicate"] for s in again.report["stored"]] == [True, True]
    local = await ingest(runtime, "pull_request", raw, {})
    local_again = await ingest(runtime, "pull_request", raw, {})
    assert local.report["stored"][0]["id"].startswith("sha256:")
    assert local_again.report["stored"] == [
        {"id": s["id"], "duplicate": True} for s in local.report["stored"]
    ]
    assert await eventlog.length() == 4


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "the event file is not JSON; nothing was stored"),
        (b'{"action": "opened"}', "pull_request: Field required"),
    ],
)
async def test_bad_event_files_store_nothing(
    redis: RedisClient, keys: Keys, eventlog: EventLog, raw: bytes, message: str
) -> None:
    with pytest.raises(IngestError, match=message):
        await ingest(runtime_for(redis, keys), "pull_request", raw, {"GITHUB_RUN_ID": "1"})
    assert await eventlog.length() == 0


async def test_a_command_is_acted_on_at_once_when_a_forge_is_configured(
    redis: RedisClient, keys: Keys, eventlog: EventLog
) -> None:
    runtime = runtime_for(redis, keys)
    forge = FakeForge(permissions={"Codertocat": Permission.WRITE})
    runtime.forge_override = lambda repo: forge
    await ingest(runtime, "pull_request", gh.body_of(gh.load("pull_request.opened")), {})
    raw = gh.body_of(gh.pr_comment("/mergebot merge"))
    result = await ingest(runtime, "issue_comment", raw, {"GITHUB_RUN_ID": "9"})
    assert result.report["command"] == "queued"
    assert result.report["command_outcomes"] == ["acted"]
    names = [e.envelope.name async for e in eventlog.replay()]
    assert names == ["branch_pushed", "finalize_ready", "review_approved", "finalize_ready"]


def test_integrate_uses_the_integrators_run_once() -> None:
    command = COMMANDS["ingest-event"].run
    assert isinstance(command, functools.partial)
    assert command.func is ingest_event.run
    assert command.keywords == {"integrate": integrator.run_once}


def cli(tmp_path: Path, redis_url: str, keys: Keys, *args: str, **env: str) -> Any:
    config = tmp_path / "mergebot.toml"
    config.write_text(gh.SERVER_TOML)
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "MERGEBOT_REDIS_URL": redis_url,
        "MERGEBOT_KEY_PREFIX": keys.prefix,
        "MERGEBOT_CONFIG": str(config),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "mergebot", "ingest-event", *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_command_line_reads_the_actions_environment(
    tmp_path: Path, redis_url: str, keys: Keys, eventlog: EventLog
) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_bytes(gh.body_of(gh.review("approved")))
    env = {
        "GITHUB_EVENT_NAME": "pull_request_review",
        "GITHUB_EVENT_PATH": str(event_file),
        "GITHUB_RUN_ID": "4242",
    }
    done = cli(tmp_path, redis_url, keys, **env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["stored"] == [{"id": f"actions:{REPO}:4242:0", "duplicate": False}]
    [entry] = [e async for e in eventlog.replay()]
    assert entry.envelope.name == "review_approved"
    assert entry.envelope.payload["review_round"] == 1

    event_file.write_text("{not json")
    bad = cli(tmp_path, redis_url, keys, **env)
    assert bad.returncode == 1
    assert "not JSON; nothing was stored" in bad.stderr

    missing = cli(tmp_path, redis_url, keys, GITHUB_EVENT_PATH=str(event_file))
    assert missing.returncode == 1
    assert "set GITHUB_EVENT_NAME" in missing.stderr

    event_file.write_bytes(gh.body_of(gh.review("approved")))
    down = cli(tmp_path, "redis://127.0.0.1:1/0", keys, **{**env, "GITHUB_RUN_ID": "1"})
    assert down.returncode == 3
    assert "event log is unavailable" in down.stderr
    assert await eventlog.length() == 1
