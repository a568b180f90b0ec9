"""The one place that builds concrete objects from settings and wires them together.

Nothing is created at import time anywhere in mergebot; commands call `open_runtime` and pass the
resulting `Runtime` down, so tests can build a Runtime around their own Redis and key prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from mergebot.config import ServerConfig, Settings, load_server_config
from mergebot.store.connection import connect
from mergebot.store.embedded import EmbeddedRedis
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys


@dataclass
class Runtime:
    """What every part of a running mergebot shares: settings, config and storage handles."""

    settings: Settings
    server_config: ServerConfig
    redis: aioredis.Redis
    keys: Keys
    eventlog: EventLog
    # Components register themselves here (processor hooks, forge clients…) during start-up.
    extras: dict[str, Any] = field(default_factory=dict)


def build_runtime(
    settings: Settings, server_config: ServerConfig, redis: aioredis.Redis, keys: Keys
) -> Runtime:
    return Runtime(settings, server_config, redis, keys, EventLog(redis, keys))


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, server_config: ServerConfig | None = None, server: bool = False
) -> AsyncIterator[Runtime]:
    """Connect to Redis (starting the embedded server when no URL is set) for the block.

    `server=True` is for the long-running processes (`serve`, `web`, `worker`): they refuse to
    start when another one already runs the embedded Redis of the data dir. Short CLI commands
    (`events`, `status`…) connect to that running server instead, and leave it running.
    """
    config = server_config or load_server_config(settings.config_path())
    keys = Keys(prefix=settings.key_prefix, partitions=settings.event_partitions)
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(settings.data_dir)
        url = embedded.start(share=not server)
    client = connect(url)
    try:
        yield build_runtime(settings, config, client, keys)
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()


# A background service runs until `stop` is set; `serve` and `worker` run every one of them.
BackgroundService = Callable[[Runtime, asyncio.Event], Awaitable[None]]

# Modules that contribute background services through a `SERVICES` tuple, if they exist.
SERVICE_MODULES = (
    "mergebot.processor",
    "mergebot.notify.delivery",
    "mergebot.forge.reconcile",
    "mergebot.github.command_worker",
)


def background_services() -> list[BackgroundService]:
    services: list[BackgroundService] = []
    for name in SERVICE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        services.extend(getattr(module, "SERVICES", ()))
    return services
