"""Appends of concurrent tasks share one script call: each caller still gets its own answer,
its own error, and nothing of one caller's batch depends on another's."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from mergebot.events import Envelope, envelope_for, parse_event
from mergebot.redis_url import redis_target
from mergebot.store.coalesce import Coalescer
from mergebot.store.connection import RedisClient, connect
from mergebot.store.eventlog import EventConflictError, EventLog
from mergebot.store.keys import Keys
from tests.factories import raw_event


def env(event_id: str, slug: str = "pr-1", review_round: int = 1) -> Envelope:
    raw = raw_event("review_approved", slug=slug, review_round=review_round)
    return envelope_for(parse_event(raw).event, source="test", event_id=event_id)


class CountingRedis(aioredis.Redis):
    """A client that counts the pipelines it runs and the EVALSHA calls it makes."""

    pipelines = 0
    single_calls = 0

    def pipeline(self, *args: object, **kwargs: object) -> aioredis.client.Pipeline:
        type(self).pipelines += 1
        return super().pipeline(*args, **kwargs)  # type: ignore[arg-type]

    async def evalsha(self, *args: object) -> object:  # type: ignore[override]
        type(self).single_calls += 1
        return await super().evalsha(*args)  # type: ignore[arg-type]


async def test_concurrent_appends_go_out_together_and_each_caller_gets_its_own_answer(
    redis_url: str, keys: Keys
) -> None:
    if redis_target(redis_url).cluster:
        # A cluster's client calls the script once per append (a script's keys must share a
        # slot); the other tests here hold for both.
        pytest.skip("appends are coalesced by the single-server client only")
    client = CountingRedis.from_url(redis_url, decode_responses=True)
    try:
        log = EventLog(client, keys)
        await log.append(env("before"))
        CountingRedis.pipelines = CountingRedis.single_calls = 0
        answers = await asyncio.gather(
            *(log.append(env(f"c{i}", slug=f"pr-{i}")) for i in range(20)),
            log.append(env("before")),
        )
        assert [(a.id, a.duplicate) for a in answers] == [
            *((f"c{i}", False) for i in range(20)), ("before", True),
        ]  # fmt: skip
        assert len({a.entry_id for a in answers[:20]}) == 20
        assert (CountingRedis.pipelines, CountingRedis.single_calls) == (0, 1)
        stored = [e.envelope.id async for e in log.replay()]
        assert stored == ["before", *(f"c{i}" for i in range(20))]
    finally:
        await client.aclose()


async def test_a_conflict_fails_only_its_own_caller(eventlog: EventLog) -> None:
    await eventlog.append(env("taken", review_round=1))
    ok, conflict, batch = await asyncio.gather(
        eventlog.append(env("fine", slug="pr-2")),
        eventlog.append(env("taken", review_round=2)),
        eventlog.append_many([env("b1", slug="pr-3"), env("b2", slug="pr-4")]),
        return_exceptions=True,
    )
    assert isinstance(conflict, EventConflictError)
    assert not isinstance(ok, BaseException)
    assert not ok.duplicate
    assert not isinstance(batch, BaseException)
    assert [r.id for r in batch] == ["b1", "b2"]
    stored = {e.envelope.id: e.envelope.payload async for e in eventlog.replay()}
    assert sorted(stored) == ["b1", "b2", "fine", "taken"]
    assert stored["taken"]["review_round"] == 1


async def test_a_script_redis_forgot_is_loaded_again_for_every_waiting_caller(
    eventlog: EventLog, redis: RedisClient
) -> None:
    await eventlog.append(env("first"))
    await redis.script_flush()  # what a Redis restart without persistence of scripts does
    answers = await asyncio.gather(*(eventlog.append(env(f"n{i}")) for i in range(5)))
    assert [a.duplicate for a in answers] == [False] * 5
    assert await eventlog.length() == 6


async def test_a_lost_connection_fails_every_caller_of_the_batch(keys: Keys) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    try:
        appender = Coalescer(client, "return 1")
        outcomes = await asyncio.gather(
            *(appender((keys.events(0), keys.event_ids(0), [])) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(o, RedisConnectionError | OSError) for o in outcomes), outcomes
    finally:
        await client.aclose()


async def test_a_cancelled_caller_does_not_disturb_the_others(eventlog: EventLog) -> None:
    doomed = asyncio.ensure_future(eventlog.append(env("doomed", slug="pr-9")))
    kept = asyncio.ensure_future(eventlog.append(env("kept", slug="pr-8")))
    await asyncio.sleep(0)  # both calls are made, neither is sent yet
    doomed.cancel()
    assert not (await kept).duplicate
    with pytest.raises(asyncio.CancelledError):
        await doomed
    # Whether the cancelled call was written depends on how far it got (with coalescing it was:
    # its batch went out); either way a retry leaves exactly one copy.
    await eventlog.append(env("doomed", slug="pr-9"))
    stored = [e.envelope.id async for e in eventlog.replay()]
    assert sorted(stored) == ["doomed", "kept"]


async def test_calls_in_one_batch_see_each_others_writes_in_order(
    eventlog: EventLog, redis_url: str
) -> None:
    if redis_target(redis_url).cluster:
        # A cluster's client sends each append on its own, so concurrent ones may run in any
        # order; the batch, and the order within it, are the single-server client's.
        pytest.skip("appends are coalesced by the single-server client only")
    same, twin, rival = await asyncio.gather(
        eventlog.append(env("shared", review_round=1)),
        eventlog.append(env("shared", review_round=1)),
        eventlog.append(env("shared", review_round=2)),
        return_exceptions=True,
    )
    assert not isinstance(same, BaseException)
    assert not same.duplicate
    assert not isinstance(twin, BaseException)
    assert twin.duplicate
    assert twin.entry_id == same.entry_id
    assert isinstance(rival, EventConflictError)
    stored = [e.envelope.payload["review_round"] async for e in eventlog.replay()]
    assert stored == [1]


class GatedRedis(aioredis.Redis):
    """A client that can hold its next EVALSHA at a gate, so a test can keep a call out; while
    recording (append calls only), it notes per call how many groups it carried and whether the
    gate was open by then."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recording = False
        self.hold_next = False
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls: list[tuple[int, bool]] = []

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        argv = list(keys_and_args[numkeys:])
        groups, at = 0, 0
        while self.recording and at < len(argv):
            groups, at = groups + 1, at + 1 + 2 * int(argv[at].split(" ")[1])
        if self.recording:
            self.calls.append((groups, self.gate.is_set()))
        if self.hold_next:
            self.hold_next = False
            self.entered.set()
            await self.gate.wait()
        return await super().evalsha(sha, numkeys, *keys_and_args)


async def test_appends_asked_for_while_a_call_is_out_go_together_in_the_next(
    redis_url: str, keys: Keys
) -> None:
    if redis_target(redis_url).cluster:
        pytest.skip("appends are coalesced by the single-server client only")
    client = GatedRedis.from_url(redis_url, decode_responses=True)
    try:
        log = EventLog(client, keys)
        await log.append(env("warm"))  # the script is loaded: no NOSCRIPT round below
        client.recording = client.hold_next = True
        first = asyncio.ensure_future(log.append(env("first")))
        await client.entered.wait()
        later = [asyncio.ensure_future(log.append(env(f"l{i}", slug=f"pr-{i}"))) for i in range(9)]
        # Step the loop a few iterations with the call still out: the nine ask for their appends,
        # and a call of their own, if one were made, would reach the client. (Loop steps, not a
        # wait for time: nothing here depends on how fast anything runs.)
        for _ in range(5):
            await asyncio.sleep(0)
        client.gate.set()
        answers = await asyncio.gather(first, *later)
        assert [a.duplicate for a in answers] == [False] * 10
        # The nine waited for the call that was out, then went as one call, after it.
        assert client.calls == [(1, False), (9, True)]
        client.recording = False
        stored = [e.envelope.id async for e in log.replay()]
        assert stored == ["warm", "first", *(f"l{i}" for i in range(9))]
    finally:
        await client.aclose()
