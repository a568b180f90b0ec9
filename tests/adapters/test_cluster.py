"""Redis Cluster: what an operator who points mergebot at a cluster relies on.

These run against whatever Redis the suite uses. On the embedded server they check the key layout
and that the single-server client is used; in the cluster stage of `.ci/run`
(`MERGEBOT_TEST_REDIS_URL=redis+cluster://…`) the same tests check that the cluster client is in
use and that two repos whose keys live on different masters are queued, leased and read together.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from mergebot.config import ServerConfig
from mergebot.events import envelope_for, parse_event
from mergebot.queue import QueueItem, Status
from mergebot.redis_url import redis_target
from mergebot.runtime import open_runtime
from mergebot.store.changes import ChangeReader
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.lease import Lease
from mergebot.store.queue import QueueStore
from tests.conftest import settings_for
from tests.factories import raw_event

REPO = "acme/widgets"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _slot(key: str) -> int:
    return key_slot(key.encode())


def _keys_of(keys: Keys, **args: object) -> dict[str, str]:
    """Every key `keys` builds from exactly these kinds of argument (by parameter name)."""
    built = {}
    for name, method in inspect.getmembers(keys, inspect.ismethod):
        params = set(inspect.signature(method).parameters)
        if name.startswith("_") or not params or not params <= set(args):
            continue
        value = method(**{p: args[p] for p in params})
        if isinstance(value, str):
            built[name] = value
    return built


def test_every_key_of_a_repo_hashes_to_the_slot_of_its_hash_tag() -> None:
    """Every script and MULTI of a repo may touch any of its keys: on a cluster they must all
    live in one slot, whatever key is added later."""
    keys = Keys(prefix="mbtest:v1")
    lease = keys.lease(REPO, "main")
    built = _keys_of(keys, repo=REPO, base="main", sink="slack", lease_key=lease)
    assert {"queue", "items", "changes", "lease", "lease_history", "projection"} <= set(built)
    assert {name: _slot(key) for name, key in built.items()} == dict.fromkeys(
        built, _slot("{acme/widgets}")
    )
    # An event-log partition's keys (the append script) and the command inbox's keys.
    for partition in range(3):
        of_partition = _keys_of(keys, partition=partition)
        assert {"events", "event_ids", "processor_lease"} <= set(of_partition)
        assert {_slot(k) for k in of_partition.values()} == {_slot(f"{{p{partition}}}")}
    assert _slot(keys.commands()) == _slot(keys.command_ids()) == _slot(keys.command_attempts())


async def test_the_client_is_the_cluster_client_exactly_when_the_server_is_a_cluster(
    redis: RedisClient, redis_url: str
) -> None:
    """A cluster URL must give the cluster client (a single-server client would get MOVED
    answers for most keys); anything else the single-server client."""
    probe = aioredis.Redis.from_url(redis_target(redis_url).url, decode_responses=True)
    try:
        enabled = bool(int((await probe.info("cluster"))["cluster_enabled"]))
    finally:
        await probe.aclose()
    assert isinstance(redis, RedisCluster) == enabled
    assert redis_target(redis_url).cluster == enabled


async def _repo_on_another_master(redis: RedisClient, keys: Keys, repo: str) -> str:
    """A second repo whose keys a cluster keeps on another master than `repo`'s."""
    if not isinstance(redis, RedisCluster):
        return "acme/gadgets"
    await redis.initialize()
    home = redis.get_node_from_key(keys.queue(repo, "main"))
    assert home is not None
    for n in range(200):
        other = f"acme/repo-{n}"
        node = redis.get_node_from_key(keys.queue(other, "main"))
        if node is not None and node.name != home.name:
            return other
    raise AssertionError("every repo name hashed to the master of acme/widgets")


def _item(repo: str, slug: str) -> QueueItem:
    return QueueItem(
        repo=repo, base="main", slug=slug, branch=f"feature/{slug}", sha="a" * 40,
        status=Status.QUEUED, ready_at=T0, updated_at=T0,
    )  # fmt: skip


async def test_two_repos_on_different_masters_are_queued_leased_and_reported_together(
    redis: RedisClient, keys: Keys
) -> None:
    other = await _repo_on_another_master(redis, keys, REPO)
    store = QueueStore(redis, keys)
    reader = ChangeReader(redis, keys, "reporter", "reporter-1")
    await reader.ensure([REPO, other])

    # The queue's scripts, one at a time and pipelined (as the processor enqueues a batch).
    assert await store.enqueue(_item(REPO, "pr-1"))
    assert await store.enqueue_many(
        [(_item(other, "pr-1"), "ready"), (_item(other, "pr-2"), "ready")]
    )
    assert [i.slug for i in await store.items(other, "main")] == ["pr-1", "pr-2"]
    # Each repo's integration lease is its own, on its own master.
    leases = [Lease(redis, keys, repo, "main", "worker-1") for repo in (REPO, other)]
    assert [await lease.acquire() for lease in leases] == [True, True]
    for lease in leases:
        await lease.release()

    # One reader over both repos' change streams (the GitHub reporter reads every repo's).
    batch = await reader.read([REPO, other], count=10, block_ms=1000)
    seen = sorted((repo, change.item.slug) for repo, change in batch.changes)
    assert seen == sorted([(REPO, "pr-1"), (other, "pr-1"), (other, "pr-2")])

    # Waiting on both: a change on the second repo's master wakes the reader.
    waiting = asyncio.ensure_future(reader.read([REPO, other], count=10, block_ms=5000))
    await asyncio.sleep(0)  # let the read start before the change arrives
    assert await store.enqueue(_item(other, "pr-3"))
    batch = await asyncio.wait_for(waiting, timeout=10)
    assert [(repo, change.item.slug) for repo, change in batch.changes] == [(other, "pr-3")]


async def test_the_cluster_setting_reaches_the_whole_cluster_from_a_plain_url_of_one_node(
    redis: RedisClient, redis_url: str, keys: Keys, tmp_path: Path
) -> None:
    """`MERGEBOT_REDIS_CLUSTER=true` with `redis://<one node>`: events of repos spread over four
    log partitions (so over several masters on a cluster) are stored and read back."""
    target = redis_target(redis_url)
    settings = settings_for(
        tmp_path,
        redis_url=target.url,
        redis_cluster=target.cluster,
        key_prefix=keys.prefix,
        event_partitions=4,
    )
    repos = [f"acme/repo-{n}" for n in range(8)]
    async with open_runtime(settings, server_config=ServerConfig({}, {})) as runtime:
        assert isinstance(runtime.redis, RedisCluster) == target.cluster
        for n, repo in enumerate(repos):
            await runtime.eventlog.append(
                envelope_for(parse_event(raw_event("review_approved", repo=repo)).event,
                             source="test", event_id=f"e-{n}")
            )  # fmt: skip
        stored = [entry.envelope.repo async for entry in runtime.eventlog.replay()]
        assert len({runtime.keys.partition_of(repo) for repo in repos}) > 1
    assert sorted(stored) == repos
