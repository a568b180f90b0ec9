"""The embedded Redis default: AOF persistence across restarts, one owner per data dir, and
nothing started when MERGEBOT_REDIS_URL is set."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mergebot.config import ServerConfig
from mergebot.events import envelope_for, parse_event
from mergebot.runtime import open_runtime
from mergebot.store.connection import connect
from mergebot.store.embedded import EmbeddedRedis, EmbeddedRedisError, redis_server_binary
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys
from tests.conftest import settings_for
from tests.factories import raw_event
from tests.waiting import until


def children() -> set[int]:
    """Pids of this process's direct children (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(pid) for pid in text)
    return found


async def answers(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_events_written_with_aof_survive_a_stop_and_start(tmp_path: Path) -> None:
    keys = Keys(prefix="persist:v1")
    event = parse_event(raw_event("review_approved")).event
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    first_pid = server.pid
    client = connect(url)
    try:
        await EventLog(client, keys).append(envelope_for(event, source="test", event_id="kept"))
    finally:
        await client.aclose()
        server.stop()
    assert first_pid is not None
    assert not alive(first_pid)
    assert list((tmp_path / "redis").glob("appendonly*"))  # the AOF is what carried the data

    again = EmbeddedRedis(tmp_path)
    client = connect(again.start())
    try:
        log = EventLog(client, keys)
        [entry] = [e async for e in log.replay()]
        assert entry.envelope.id == "kept"
        assert (await log.append(entry.envelope)).duplicate  # the idempotency index came back too
    finally:
        await client.aclose()
        again.stop()


async def test_with_a_redis_url_nothing_is_started(
    redis_url: str, keys: Keys, tmp_path: Path
) -> None:
    before = children()
    settings = settings_for(tmp_path, redis_url=redis_url, key_prefix=keys.prefix)
    async with open_runtime(settings, server_config=ServerConfig({}, {}), server=True) as rt:
        assert await rt.redis.ping()
        assert children() == before
    assert not (tmp_path / "data").exists()


async def test_a_second_server_on_the_same_data_dir_is_refused_and_a_cli_shares(
    tmp_path: Path,
) -> None:
    owner = EmbeddedRedis(tmp_path)
    url = owner.start()
    try:
        with pytest.raises(EmbeddedRedisError, match="already running"):
            EmbeddedRedis(tmp_path).start()
        guest = EmbeddedRedis(tmp_path)
        assert guest.start(share=True) == url
        guest.stop()
        assert owner.pid is not None
        assert alive(owner.pid)  # the guest leaves the owner's server alone
    finally:
        owner.stop()
    assert not (tmp_path / "redis" / "server.url").exists()


def test_a_stale_url_file_does_not_block_a_new_server(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "server.url").write_text("unix:///nonexistent/redis.sock\n")
    with EmbeddedRedis(tmp_path) as server:
        assert server.pid is not None
        assert alive(server.pid)


async def test_a_server_left_running_by_a_dead_owner_is_shut_down_and_its_data_kept(
    tmp_path: Path,
) -> None:
    """A redis-server whose owner is gone (no one holds the owner lock) but that still answers —
    e.g. one started by an older mergebot, or whose parent-death signal was lost — is shut down
    by the next start (its AOF written), never run beside a second writer."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    sock = redis_dir / "redis.sock"
    orphan = subprocess.Popen(
        [
            str(redis_server_binary()), "--dir", str(redis_dir), "--appendonly", "yes",
            "--save", "", "--port", "0", "--unixsocket", str(sock),
            "--pidfile", str(redis_dir / "redis.pid"), "--logfile", str(redis_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"unix://{sock}"
        (redis_dir / "server.url").write_text(url + "\n")
        client = connect(url)
        try:
            await until(lambda: answers(client), "the orphan answering")
            keys = Keys(prefix="orphan:v1")
            event = parse_event(raw_event("review_approved")).event
            await EventLog(client, keys).append(envelope_for(event, source="t", event_id="kept"))
        finally:
            await client.aclose()

        with EmbeddedRedis(tmp_path) as server:
            assert orphan.wait(timeout=15) == 0  # shut down cleanly, before the new one started
            assert server.pid != orphan.pid
            client = connect(server.url)
            try:
                [entry] = [e async for e in EventLog(client, keys).replay()]
                assert entry.envelope.id == "kept"
            finally:
                await client.aclose()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
