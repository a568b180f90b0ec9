"""Liveness after a crash or a stall, with real processes: a server killed with SIGKILL in the
middle of a batch is replaced by a restarted one that folds the batch within 10 s (its partition
lease runs out in MERGEBOT_PROCESSOR_LEASE_TTL_SECONDS, and the waiting server wakes when it
does); an integrator stopped with SIGSTOP while holding the integration lease is replaced by
another replica within the lease's TTL plus 2 s (the replica that found the lease held sleeps
until it runs out, instead of waiting for the next sweep)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mergebot.config import parse_server_config
from mergebot.events import envelope_for, parse_event
from mergebot.integrator import IntegratorHook
from mergebot.processor import GROUP
from mergebot.queue import Status
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.lease import info_from_hash
from tests.conftest import API_TOKEN, free_port
from tests.e2e.test_integrator_processes import World
from tests.gitutil import GitRemote
from tests.integrationkit import REPO, candidate_events, items, make_candidate, server_toml
from tests.waiting import until

pytestmark = pytest.mark.slow


@pytest.fixture
async def world(
    redis: RedisClient, keys: Keys, redis_url: str, remote: GitRemote, tmp_path: Path
) -> AsyncIterator[World]:
    world = World(redis, keys, redis_url, remote, tmp_path)
    try:
        yield world
    finally:
        world.runtime.close_mirrors()


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate(timeout=30)  # also closes its pipes, if it has any


async def lease_owner(world: World, key: str) -> str | None:
    holder = info_from_hash(await world.runtime.redis.hgetall(key))
    return holder.owner if holder else None


async def has_owner(world: World, key: str) -> bool:
    return await lease_owner(world, key) is not None


async def test_a_restarted_server_folds_the_batch_a_killed_one_left_pending_within_10_s(
    world: World, tmp_path: Path
) -> None:
    world.config.write_text(server_toml(world.remote))
    env = world.env(MERGEBOT_PORT=str(free_port()), MERGEBOT_API_TOKEN=API_TOKEN)
    command = [sys.executable, "-m", "mergebot", "serve"]
    partition_lease = world.keys.processor_lease(0)
    started: list[subprocess.Popen[bytes]] = []
    with (tmp_path / "serve.log").open("wb") as log:
        try:
            started.append(subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log))
            await until(lambda: has_owner(world, partition_lease), timeout=60)
            owner = await lease_owner(world, partition_lease)
            assert owner is not None
            started[0].send_signal(signal.SIGKILL)
            started[0].wait(timeout=30)
            killed_at = time.monotonic()
            # The batch it was folding when it died: delivered to it, never acknowledged.
            cand = make_candidate(world.remote, "pr-1", "one.txt", "1\n")
            raws = candidate_events(cand, 0)
            eventlog = world.runtime.eventlog
            envs = [envelope_for(parse_event(r).event, source="t") for r in raws]
            await eventlog.append_many(envs)
            await eventlog.ensure_group(GROUP, 0)
            assert len(await eventlog.read_group(GROUP, owner, 0, count=10)) == len(raws)

            started.append(subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=log))

            async def folded() -> bool:
                return "pr-1" in await items(world.runtime)

            await until(folded, timeout=30)
            assert time.monotonic() - killed_at <= 10
        finally:
            for process in started:
                stop(process)


async def test_a_stalled_lease_holder_is_replaced_within_the_lease_ttl_plus_2_s(
    world: World,
) -> None:
    ttl = 3.0
    text = server_toml(world.remote, lease_ttl_seconds=ttl, lease_renew_seconds=0.5,
                       grace_seconds=60)  # fmt: skip
    world.config.write_text(text)
    world.runtime.server_config = parse_server_config(text, str(world.config))
    lease_key = world.keys.lease(REPO, "main")
    await world.queue(make_candidate(world.remote, "pr-1", "one.txt", "1\n"))
    holder = world.drain()  # lands pr-1, then holds the lease through its grace period
    hook = IntegratorHook(world.runtime)
    try:

        async def landed(slug: str) -> bool:
            found = (await items(world.runtime)).get(slug)
            return found is not None and found.status == Status.INTEGRATED

        await until(lambda: landed("pr-1"), timeout=60)
        stalled = await lease_owner(world, lease_key)
        assert stalled is not None
        holder.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()

        # This process is the other replica: its processor queues pr-2 and tells its hook,
        # whose drain finds the lease held.
        world.runtime.ready_hook = hook
        await world.queue(make_candidate(world.remote, "pr-2", "two.txt", "2\n"))

        async def replaced() -> bool:
            owner = await lease_owner(world, lease_key)
            return owner is not None and owner != stalled

        await until(replaced, timeout=30)
        assert time.monotonic() - stopped_at <= ttl + 2
        await until(lambda: landed("pr-2"), timeout=60)
    finally:
        await hook.close()
        stop(holder)
