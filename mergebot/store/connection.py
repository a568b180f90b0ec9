"""How mergebot opens Redis connections: one place, so every client decodes text the same way
and the URL decides whether it talks to a single server or to a Redis Cluster
(`mergebot.redis_url`). A cluster needs nothing else of the code: every key that one script or
MULTI touches shares a hash tag (`keys.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster

from mergebot.redis_url import redis_target

# What every store module and service holds: a single-server client or a cluster client. Both
# answer the commands mergebot uses; on a cluster every multi-key command, script and MULTI must
# stay inside one hash slot.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster
RedisPipeline: TypeAlias = Pipeline | ClusterPipeline


def connect(url: str, *, cluster: bool = False, timeout: float = 5.0) -> RedisClient:
    """An asyncio client that returns `str`; every connect and command has a bounded timeout.
    A cluster URL (or `cluster=True`) gives redis-py's cluster client."""
    target = redis_target(url, cluster=cluster)
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": timeout,
        "socket_timeout": None,  # blocking XREADGROUP calls set their own limit
        "health_check_interval": 30,
    }
    if not target.cluster:
        return aioredis.Redis.from_url(url, **options)
    startup = [ClusterNode(host, port) for host, port in target.nodes]
    return RedisCluster.from_url(target.url, startup_nodes=startup, **options)


def same_slot_groups(redis: RedisClient, keys: Sequence[str]) -> list[list[str]]:
    """`keys` in groups that one command may name together (in first-seen order): all of them
    on a single server; on a cluster, those of one hash slot."""
    if not isinstance(redis, RedisCluster):
        return [list(keys)]
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(redis.keyslot(key), []).append(key)
    return list(groups.values())


async def subscribe(redis: RedisClient, channel: str) -> PubSub:
    """A pub/sub subscription to `channel`. A cluster client learns the slot map first: redis-py's
    cluster pub/sub looks the channel's slot up in it without loading it (a KeyError when the
    subscription is the client's first command)."""
    if isinstance(redis, RedisCluster):
        await redis.initialize()
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)
    return pubsub
