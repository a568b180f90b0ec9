"""The event log on real Redis: idempotent append, consumer groups, reclaim, replay, trimming."""

from __future__ import annotations

import asyncio

import pytest

from mergebot.events import Envelope, envelope_for, parse_event
from mergebot.store.eventlog import EventConflictError, EventLog
from tests.factories import raw_event


def env(name: str = "review_approved", event_id: str | None = None, **fields: object) -> Envelope:
    return envelope_for(
        parse_event(raw_event(name, **fields)).event, source="test", event_id=event_id
    )


async def test_same_id_twice_is_stored_once_and_reported_as_duplicate(eventlog: EventLog) -> None:
    first = await eventlog.append(env(event_id="d-1"))
    again = await eventlog.append(env(event_id="d-1"))
    assert not first.duplicate
    assert again.duplicate
    assert again.entry_id == first.entry_id
    assert await eventlog.length() == 1


async def test_same_id_other_payload_is_refused_and_stored_event_unchanged(
    eventlog: EventLog,
) -> None:
    await eventlog.append(env(event_id="d-1", review_round=1))
    with pytest.raises(EventConflictError):
        await eventlog.append(env(event_id="d-1", review_round=2))
    [stored] = [e async for e in eventlog.replay()]
    assert stored.envelope.payload["review_round"] == 1


async def test_batch_with_a_conflict_stores_nothing(eventlog: EventLog) -> None:
    await eventlog.append(env(event_id="d-1"))
    batch = [env(event_id="new-1", slug="pr-2"), env(event_id="d-1", review_round=9)]
    with pytest.raises(EventConflictError):
        await eventlog.append_many(batch)
    assert await eventlog.length() == 1


async def test_batch_results_are_in_order_and_mark_duplicates(eventlog: EventLog) -> None:
    await eventlog.append(env(event_id="old"))
    results = await eventlog.append_many(
        [env(event_id="n1", slug="pr-2"), env(event_id="old"), env(event_id="n1", slug="pr-2")]
    )
    assert [(r.id, r.duplicate) for r in results] == [("n1", False), ("old", True), ("n1", True)]
    assert await eventlog.length() == 2


async def test_replay_yields_every_event_in_append_order(eventlog: EventLog) -> None:
    sent = [env(event_id=f"e{i}", slug=f"pr-{i}") for i in range(1200)]
    await eventlog.append_many(sent)
    replayed = [e.envelope async for e in eventlog.replay()]
    assert [e.id for e in replayed] == [e.id for e in sent]
    assert replayed[5] == sent[5]


async def test_replay_and_tail_filter_by_repo(eventlog: EventLog) -> None:
    await eventlog.append_many(
        [env(event_id=f"a{i}", repo="acme/a") for i in range(3)]
        + [env(event_id=f"b{i}", repo="acme/b") for i in range(3)]
    )
    assert [e.envelope.id async for e in eventlog.replay(repo="acme/b")] == ["b0", "b1", "b2"]
    assert [e.envelope.id for e in await eventlog.tail(limit=2, repo="acme/a")] == ["a1", "a2"]
    assert [e.envelope.id for e in await eventlog.tail(limit=2)] == ["b1", "b2"]


async def test_consumer_group_reclaims_a_dead_consumers_entries(eventlog: EventLog) -> None:
    await eventlog.ensure_group("proc", 0)
    await eventlog.append_many([env(event_id=f"e{i}", slug=f"pr-{i}") for i in range(3)])
    taken = await eventlog.read_group("proc", "dead-worker", 0, count=10)
    assert len(taken) == 3
    await eventlog.ack("proc", 0, [taken[0].entry_id])  # dies before acking the other two

    summary = await eventlog.pending("proc", 0)
    assert summary.count == 2
    assert summary.consumers == {"dead-worker": 2}
    assert await eventlog.read_group("proc", "live-worker", 0) == []  # nothing new to read

    reclaimed = await eventlog.reclaim("proc", "live-worker", 0, min_idle_ms=0)
    assert [e.envelope.id for e in reclaimed] == ["e1", "e2"]
    await eventlog.ack("proc", 0, [e.entry_id for e in reclaimed])
    assert (await eventlog.pending("proc", 0)).count == 0


async def test_consume_acknowledges_what_it_did_before_an_effect_failed(eventlog: EventLog) -> None:
    await eventlog.append_many([env(event_id=f"e{i}", slug=f"pr-{i}") for i in range(4)])
    seen: list[str] = []

    async def effect(envelope: Envelope) -> None:
        if envelope.id == "e2" and "e2" not in seen:
            seen.append("e2")
            raise RuntimeError("sink down")
        seen.append(envelope.id)

    with pytest.raises(RuntimeError):
        await eventlog.consume("notify", "w1", 0, effect, reclaim_idle_ms=60_000)
    assert (await eventlog.pending("notify", 0)).count == 2  # e2 failed, e3 never ran
    assert await eventlog.consume("notify", "w1", 0, effect, reclaim_idle_ms=60_000) == 2
    assert seen == ["e0", "e1", "e2", "e2", "e3"]
    assert (await eventlog.pending("notify", 0)).count == 0


async def test_reclaim_respects_the_idle_time(eventlog: EventLog) -> None:
    await eventlog.ensure_group("proc", 0)
    await eventlog.append(env(event_id="e0"))
    await eventlog.read_group("proc", "busy-worker", 0)
    assert await eventlog.reclaim("proc", "other", 0, min_idle_ms=60_000) == []


async def test_a_restarted_consumer_sees_its_own_pending_entries(eventlog: EventLog) -> None:
    await eventlog.ensure_group("proc", 0)
    await eventlog.append(env(event_id="e0"))
    await eventlog.read_group("proc", "w1", 0)
    again = await eventlog.read_group("proc", "w1", 0, pending=True)
    assert [e.envelope.id for e in again] == ["e0"]


async def test_blocking_read_wakes_on_append(eventlog: EventLog) -> None:
    await eventlog.ensure_group("proc", 0)
    reader = asyncio.create_task(eventlog.read_group("proc", "w", 0, block_ms=5000))
    await asyncio.sleep(0)  # let the reader issue its XREADGROUP
    await eventlog.append(env(event_id="late"))
    got = await asyncio.wait_for(reader, 5)
    assert [e.envelope.id for e in got] == ["late"]


async def test_trim_never_drops_unacknowledged_entries(eventlog: EventLog) -> None:
    await eventlog.ensure_group("fast", 0)
    await eventlog.ensure_group("slow", 0)
    await eventlog.append_many([env(event_id=f"e{i}", slug=f"pr-{i}") for i in range(5)])
    fast = await eventlog.read_group("fast", "f", 0, count=10)
    await eventlog.ack("fast", 0, [e.entry_id for e in fast])
    slow = await eventlog.read_group("slow", "s", 0, count=3)
    await eventlog.ack("slow", 0, [slow[0].entry_id])  # e1, e2 pending; e3, e4 undelivered

    assert await eventlog.trim() == 1
    remaining = [e.envelope.id async for e in eventlog.replay()]
    assert remaining == ["e1", "e2", "e3", "e4"]


async def test_trim_without_groups_keeps_everything(eventlog: EventLog) -> None:
    await eventlog.append_many([env(event_id=f"e{i}", slug=f"pr-{i}") for i in range(3)])
    assert await eventlog.trim() == 0
    assert await eventlog.length() == 3
