"""A garbage entry in a queue change stream (`keys.changes(repo)`) is a poison entry: the GitHub
reporter and the notifier get past it, acknowledge it, and it is recorded once and counted by
`mergebot status` — the same mechanism as the event log's poison entries."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mergebot.commands.status import render
from mergebot.config import ServerConfig
from mergebot.github import reporter
from mergebot.notify import delivery
from mergebot.runtime import Runtime
from mergebot.status import repo_status
from mergebot.store.changes import poison_changes
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.queue import QueueStore
from tests.adapters.test_github_reporter import item_for, mergebot_run
from tests.chatstandin import ChatStandIn
from tests.fakegithub.harness import mergebot_for, settings_for
from tests.fakegithub.server import FakeGitHub
from tests.notifykit import REPO, Lifecycle, configure, drain, notifier, sink

SHA = "a1" * 20


@pytest.fixture
async def standin() -> AsyncIterator[ChatStandIn]:
    server = await ChatStandIn().start()
    try:
        yield server
    finally:
        await server.stop()


async def _garbage(redis: RedisClient, keys: Keys) -> list[str]:
    """Two entries no reader can parse: no fields it knows, and an item that is not JSON."""
    stream = keys.changes(REPO)
    return [
        str(await redis.xadd(stream, {"garbage": "1"})),
        str(await redis.xadd(stream, {"item": "{not json", "to": "queued", "from": ""})),
    ]


async def _pending(redis: RedisClient, keys: Keys, group: str) -> int:
    summary = await redis.xpending(keys.changes(REPO), group)
    return int(summary["pending"])


async def test_the_notifier_gets_past_garbage_and_status_counts_it(
    runtime: Runtime, standin: ChatStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    configure(runtime, [sink("webhook", standin, events=["queued", "started"])])
    bad = await _garbage(runtime.redis, runtime.keys)
    life = Lifecycle(runtime)
    await life.queued(SHA)
    await life.started()
    n = notifier(runtime, standin)
    await drain(n)
    await n.close()

    # The valid changes after the garbage are still announced.
    texts = [body["text"] for _, body in standin.posted]
    assert len(texts) == 2  # queued, then started
    assert "pr-42: queued for main" in texts[0]
    assert "pr-42" in texts[1]
    assert await _pending(runtime.redis, runtime.keys, delivery.GROUP) == 0
    records = await poison_changes(runtime.redis, runtime.keys, REPO)
    assert [r["entry_id"] for r in records] == bad
    assert records[0]["fields"] == {"garbage": "1"}
    assert "missing field" in records[0]["error"]
    assert f"change_stream_poison_entry repo={REPO} entry={bad[0]} group=notify" in caplog.text
    status = await repo_status(runtime, REPO)
    assert status["poison_changes"] == 2
    assert "unreadable queue change entries (skipped, kept): 2" in render(status)


async def test_the_reporter_gets_past_garbage_and_records_it_once(
    fake_github: FakeGitHub,
    redis: RedisClient,
    keys: Keys,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    repo = fake_github.add_repo(REPO)
    config = ServerConfig({}, {REPO: {"forge": "github", "remote": str(repo.bare)}})
    async with mergebot_for(
        fake_github, redis, keys, config, settings_for(fake_github, tmp_path)
    ) as runtime:
        bad = await _garbage(redis, keys)
        sha = repo.remote.branch_with("two", "two.txt", "2\n")
        await fake_github.sync()
        number = await fake_github.open_pull(REPO, "two", "bob")
        await QueueStore(redis, keys).enqueue(item_for(f"pr-{number}", "two", sha))

        assert await reporter.drain(runtime, "test") == 1  # the valid change, after the garbage
        run = mergebot_run(repo, sha)
        assert (run["status"], run["output"]["title"]) == (
            "queued",
            "Queued at position 1 for main",
        )
        assert await _pending(redis, keys, reporter.GROUP) == 0
        assert await reporter.drain(runtime, "test") == 0  # nothing left to trip over

        # A second reader meeting the same entries does not record them twice.
        records = await poison_changes(redis, keys, REPO)
        assert [r["entry_id"] for r in records] == bad
        assert (await repo_status(runtime, REPO))["poison_changes"] == 2
    assert f"change_stream_poison_entry repo={REPO} entry={bad[1]} group={reporter.GROUP}" in (
        caplog.text
    )
