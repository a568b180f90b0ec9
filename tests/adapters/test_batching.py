"""Reads asked for together go out as one pipeline, and each caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry

from mergebot.store.batching import BatchingClient
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from tests.conftest import free_port


@pytest.fixture
def batching(redis: RedisClient) -> BatchingClient:
    if not isinstance(redis, aioredis.Redis):
        # `Runtime.batched_reads` keeps a cluster client as it is: its commands go to several
        # nodes, so there is no one pipeline to put them in.
        pytest.skip("reads are batched by the single-server client only")
    return BatchingClient(redis)


async def test_each_caller_gets_its_own_answer_or_error(
    batching: BatchingClient, redis: RedisClient, keys: Keys
) -> None:
    await redis.set(f"{keys.prefix}:s", "text")
    await redis.hset(f"{keys.prefix}:h", mapping={"a": "1", "b": "2"})
    sent = []
    send = batching._send

    async def counted(batch: list[object]) -> None:
        sent.append(len(batch))
        await send(batch)  # type: ignore[arg-type]

    batching._send = counted  # type: ignore[method-assign]
    text, fields, wrong, missing = await asyncio.gather(
        batching.get(f"{keys.prefix}:s"),
        batching.hgetall(f"{keys.prefix}:h"),
        batching.hgetall(f"{keys.prefix}:s"),  # a string: WRONGTYPE, for this caller alone
        batching.get(f"{keys.prefix}:nothing"),
        return_exceptions=True,
    )
    assert (text, fields, missing) == ("text", {"a": "1", "b": "2"}, None)
    assert isinstance(wrong, ResponseError)
    assert sent == [4]  # one pipeline for the four


async def test_a_script_redis_does_not_know_is_loaded_and_run(
    batching: BatchingClient, redis: RedisClient, keys: Keys
) -> None:
    await redis.set(f"{keys.prefix}:s", "text")
    script = batching.register_script("return redis.call('GET', KEYS[1])")
    await redis.script_flush()
    answers = await asyncio.gather(
        script(keys=[f"{keys.prefix}:s"]), batching.get(f"{keys.prefix}:s")
    )
    assert answers == ["text", "text"]


async def test_a_lost_connection_fails_every_caller_of_the_batch(keys: Keys) -> None:
    unreachable = aioredis.Redis(
        host="127.0.0.1", port=free_port(), decode_responses=True, retry=Retry(NoBackoff(), 0)
    )
    batching = BatchingClient(unreachable)
    answers = await asyncio.gather(
        batching.get(f"{keys.prefix}:a"), batching.get(f"{keys.prefix}:b"), return_exceptions=True
    )
    assert all(isinstance(a, RedisConnectionError) for a in answers), answers
    await unreachable.aclose()
