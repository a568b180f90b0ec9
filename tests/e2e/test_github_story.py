"""A pull request's life on a fake GitHub (real git, real REST shapes, signed webhooks) driving the
real webhook, the command worker and the PyGithub forge adapter against real Redis."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from mergebot.config import Settings, parse_server_config
from mergebot.forge.github import GitHubCredentials, GitHubForge
from mergebot.github.command_worker import command_service
from mergebot.github.signature import sign
from mergebot.main import create_app
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests import waiting
from tests.fakegithub.fixtures import FAKE_TOKEN, WEBHOOK_SECRET
from tests.fakegithub.server import FakeGitHub

# Whole stories through the fake GitHub: a generous deadline, polled gently.
until = functools.partial(waiting.until, timeout=15, interval=0.02)

REPO = "acme/widgets"


@pytest.fixture
async def mergebot(
    fake_github: FakeGitHub,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    redis: RedisClient,
    keys: Keys,
) -> AsyncIterator[Runtime]:
    config = parse_server_config(f'[repos."{REPO}"]\nforge = "github"\n', "mergebot.toml")
    runtime = build_runtime(Settings(webhook_secret=WEBHOOK_SECRET), config, redis, keys)
    forge = GitHubForge(
        GitHubCredentials(token=FAKE_TOKEN),
        api_url=fake_github.api_url,
        seconds_between_writes=None,
    )
    runtime.forge_override = lambda repo: forge
    server = await aiohttp_server(create_app(runtime))
    fake_github.sender.url = str(server.make_url("/webhook"))
    stop = asyncio.Event()
    worker = asyncio.create_task(command_service(runtime, stop))
    try:
        yield runtime
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=5)


async def names(runtime: Runtime) -> list[tuple[str, str]]:
    return [
        (e.envelope.name.value, str(e.envelope.payload.get("reviewer_session_id", "")))
        async for e in runtime.eventlog.replay()
    ]


async def test_commands_on_a_pull_request_act_once_and_refuse_readers(
    fake_github: FakeGitHub, mergebot: Runtime
) -> None:
    repo = fake_github.add_repo(REPO)
    repo.permissions.update({"writer": "write", "reader": "read"})
    sha = repo.remote.branch_with("feature", "a.txt", "a\n")
    await fake_github.sync()
    number = await fake_github.open_pull(REPO, "feature", "bob")
    await fake_github.comment(REPO, number, "reader", "/mergebot merge")
    await fake_github.comment(REPO, number, "writer", "Thanks!\n\n/mergebot merge")

    async def approved() -> bool:
        return ("review_approved", "writer") in await names(mergebot)

    async def refused() -> bool:
        return any(c["user"]["login"] == "mergebot-bot" for c in repo.comments[number])

    await until(approved, "the writer's approval")
    await until(refused, "the refusal comment to the reader")

    # GitHub redelivers the writer's comment (same delivery id): nothing more happens.
    delivery = fake_github.sender.sent("issue_comment")[-1]
    body = json.dumps(delivery.payload).encode()
    async with ClientSession() as session:
        response = await session.post(
            str(fake_github.sender.url),
            data=body,
            headers={
                "X-GitHub-Event": "issue_comment",
                "X-GitHub-Delivery": delivery.delivery_id,
                "X-Hub-Signature-256": sign(WEBHOOK_SECRET.encode(), body),
                "Content-Type": "application/json",
            },
        )
        assert (response.status, (await response.json())["command"]) == (200, "duplicate")

    assert [d.status for d in fake_github.sender.deliveries] == [200, 200, 200, 200]
    stored = [e.envelope async for e in mergebot.eventlog.replay()]
    assert [(e.name.value, e.payload.get("branch"), e.payload.get("sha")) for e in stored] == [
        ("branch_pushed", "feature", sha),  # the push
        ("branch_pushed", "feature", sha),  # the pull request opened …
        ("finalize_ready", "feature", sha),  # … is a candidate
        ("review_approved", None, sha),  # `/mergebot merge` by the writer
        ("finalize_ready", "feature", sha),
    ]
    assert stored[3].payload["reviewer_session_id"] == "writer"
    bot_comments: list[dict[str, Any]] = [
        c for c in repo.comments[number] if c["user"]["login"] == "mergebot-bot"
    ]
    assert len(bot_comments) == 1
    assert "Sorry @reader" in bot_comments[0]["body"]
    assert "yours is `read`" in bot_comments[0]["body"]
