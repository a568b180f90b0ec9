"""A stream entry whose envelope cannot be read is a poison entry: every consumer group gets past
it (acknowledged for that group), it is recorded and counted, and it stays in the stream."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from mergebot.commands.status import render
from mergebot.events import envelope_for, parse_event
from mergebot.processor import GROUP
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.status import repo_status
from mergebot.store.eventlog import EventLog
from tests.brainkit import emit, manage, process, queue_items
from tests.factories import REPO, raw_event
from tests.unit.test_readiness import READY_SET


async def valid(eventlog: EventLog, slug: str) -> str:
    event = parse_event(raw_event("resume_requested", slug=slug)).event
    return (await eventlog.append(envelope_for(event, source="test"))).entry_id


async def garbage(eventlog: EventLog, **fields: str) -> str:
    """A raw XADD behind the event log's back, as a broken producer or a person would write it."""
    return str(await eventlog.redis.xadd(eventlog.keys.events(0), fields or {"x": "y"}))


async def test_read_group_skips_acknowledges_and_records_a_poison_entry(
    eventlog: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    first = await valid(eventlog, "pr-1")
    bad = await garbage(eventlog, id="evil", repo=REPO, envelope="{not json")
    last = await valid(eventlog, "pr-2")
    await eventlog.ensure_group("g", 0)
    with caplog.at_level(logging.WARNING, logger="mergebot.store.eventlog"):
        entries = await eventlog.read_group("g", "c1", 0)
    assert [e.entry_id for e in entries] == [first, last]
    assert f"event_log_poison_entry partition=0 entry={bad} group=g" in caplog.text
    await eventlog.ack("g", 0, [first, last])
    assert (await eventlog.pending("g", 0)).count == 0  # the poison entry is acknowledged too
    # Kept: still in the stream, and recorded with its raw fields and why.
    assert await eventlog.length() == 3
    [record] = await eventlog.poison_entries()
    assert record["entry_id"] == bad
    assert record["fields"] == {"id": "evil", "repo": REPO, "envelope": "{not json"}
    assert record["error"].startswith("ValidationError")
    assert await eventlog.poison_count() == 1
    # Another group gets past it as well; a replay skips it.
    await eventlog.ensure_group("other", 0)
    assert [e.entry_id for e in await eventlog.read_group("other", "c9", 0)] == [first, last]
    assert (await eventlog.pending("other", 0)).count == 2
    assert [e.entry_id async for e in eventlog.replay()] == [first, last]
    assert [e.entry_id for e in await eventlog.tail(limit=5)] == [first, last]
    assert await eventlog.poison_count() == 1  # recorded once


async def test_reclaim_gets_past_a_poison_entry_a_dead_consumer_left_pending(
    eventlog: EventLog,
) -> None:
    await eventlog.ensure_group("g", 0)
    bad = await garbage(eventlog)  # no envelope field at all
    good = await valid(eventlog, "pr-1")
    # A consumer that read both (before this version) and died without acknowledging.
    await eventlog.redis.xreadgroup("g", "dead", {eventlog.keys.events(0): ">"})
    claimed = await eventlog.reclaim("g", "alive", 0, min_idle_ms=0)
    assert [e.entry_id for e in claimed] == [good]
    summary = await eventlog.pending("g", 0)
    assert (summary.count, summary.consumers) == (1, {"alive": 1})
    [record] = await eventlog.poison_entries()
    assert (record["entry_id"], record["error"]) == (bad, "no envelope field")


async def test_the_processor_gets_past_garbage_and_status_counts_it(runtime: Runtime) -> None:
    manage(runtime)
    await garbage(runtime.eventlog, envelope=json.dumps({"id": "x", "name": "nonsense"}))
    await emit(runtime, *READY_SET)
    await process(runtime)
    [item] = await queue_items(runtime)
    assert (item.slug, item.status) == ("pr-1", Status.QUEUED)
    assert (await runtime.eventlog.pending(GROUP, 0)).count == 0
    status = await repo_status(runtime, REPO)
    assert status["poison_events"] == 1
    assert "unreadable event log entries (skipped, kept): 1" in render(status)


async def test_replay_gets_past_envelopes_holding_the_page_separators(eventlog: EventLog) -> None:
    """A replay reads pages packed into one string with two control characters as separators;
    garbage holding them (never valid JSON) is recorded like any other poison entry."""
    first = await valid(eventlog, "pr-1")
    record_sep = await garbage(eventlog, id="rs", repo=REPO, envelope='{"a":\x1e1}')
    unit_sep = await garbage(eventlog, id="us", repo=REPO, envelope='{"a":\x1f1}')
    last = await valid(eventlog, "pr-2")
    assert [e.entry_id async for e in eventlog.replay()] == [first, last]
    assert [e.entry_id async for e in eventlog.replay(repo=REPO, batch=2)] == [first, last]
    records = await eventlog.poison_entries()
    assert [r["entry_id"] for r in records] == [record_sep, unit_sep]
    assert records[0]["fields"]["envelope"] == '{"a":\x1e1}'


async def test_a_group_reader_gets_past_envelopes_holding_its_separator(
    eventlog: EventLog,
) -> None:
    """Group reads come packed into one string per reply, like a replay's pages: garbage holding
    the separator, or an empty envelope, is recorded like any other poison entry; an entry
    deleted while pending is left out; a reader that waits gets what arrives meanwhile."""
    first = await valid(eventlog, "pr-1")
    record_sep = await garbage(eventlog, id="rs", repo=REPO, envelope='{"a":\x1e1}')
    empty = await garbage(eventlog, id="e", repo=REPO, envelope="")
    last = await valid(eventlog, "pr-2")
    await eventlog.ensure_group("g", 0)
    assert [e.entry_id for e in await eventlog.read_group("g", "c", 0)] == [first, last]
    assert [r["entry_id"] for r in await eventlog.poison_entries()] == [record_sep, empty]
    assert (await eventlog.pending("g", 0)).count == 2  # the poison entries are acknowledged
    await eventlog.redis.xdel(eventlog.keys.events(0), first)
    assert [e.entry_id for e in await eventlog.read_group("g", "c", 0, pending=True)] == [last]
    waiting = asyncio.create_task(eventlog.read_group("g", "c", 0, block_ms=10_000))
    later = await valid(eventlog, "pr-3")
    assert [e.entry_id for e in await waiting] == [later]
