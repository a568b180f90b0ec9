"""mergebot wired to the fake GitHub, in-process: its web app receives the fake's webhooks, its
forge is the real PyGithub adapter pointed at the fake, and (optionally) its background services
run — everything but GitHub's HTTP is real (Redis, git, the event log)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from mergebot.config import ServerConfig, Settings
from mergebot.main import background_services, create_app
from mergebot.runtime import Runtime, build_runtime
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.fakegithub.fixtures import FAKE_TOKEN, WEBHOOK_SECRET
from tests.fakegithub.server import FakeGitHub


def settings_for(fake: FakeGitHub, data_dir: Any, **overrides: Any) -> Settings:
    return Settings(
        webhook_secret=SecretStr(WEBHOOK_SECRET),
        github_token=SecretStr(FAKE_TOKEN),
        github_api_url=fake.api_url,
        github_seconds_between_writes=0,
        data_dir=data_dir,
        **overrides,
    )


@contextlib.asynccontextmanager
async def mergebot_for(
    fake: FakeGitHub,
    redis: RedisClient,
    keys: Keys,
    server_config: ServerConfig,
    settings: Settings,
    *,
    services: bool = False,
) -> AsyncIterator[Runtime]:
    """Run mergebot's web tier (and its workers with `services`) for the block."""
    runtime = build_runtime(settings, server_config, redis, keys)
    runner = web.AppRunner(create_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.sender.url = f"http://127.0.0.1:{port}/webhook"
    stop = asyncio.Event()
    tasks = (
        [asyncio.create_task(svc(runtime, stop)) for svc in background_services()]
        if services
        else []
    )
    try:
        yield runtime
    finally:
        fake.sender.url = None  # the receiver is going away: deliveries fail from here on
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        async with fake.sender.lock:  # let a delivery in flight finish before the server stops
            await runner.cleanup()
