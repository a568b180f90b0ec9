"""How mergebot opens Redis connections: one place, so every client decodes text the same way."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect(url: str, *, timeout: float = 5.0) -> aioredis.Redis:
    """An asyncio client that returns `str`; every connect and command has a bounded timeout."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=None,  # blocking XREADGROUP calls set their own limit
        health_check_interval=30,
    )
