"""Compaction: slugs finished before the retention period leave the projection, the log is
trimmed, and replay from the snapshot plus the log's tail gives the projection a full replay
gives once pruned the same way."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mergebot.commands.compact import _compact as compact_command
from mergebot.compaction import compact_partition, compaction_due, load_snapshot, prune
from mergebot.main import main
from mergebot.queue import Status
from mergebot.rebuild import replay
from mergebot.runtime import Runtime
from mergebot.store.lease import Lease
from mergebot.store.projection import ProjectionStore
from tests.brainkit import emit, manage, process, queue_items
from tests.factories import REPO, raw_event
from tests.waiting import until

NOW = datetime.now(UTC)
RETENTION = timedelta(days=30)
# Compacting "40 days from now" puts the cutoff 10 days ahead: every log entry written by this
# test is older than it, and the facts are dated on either side of it on purpose.
LATER = NOW + timedelta(days=40)
OLD = (NOW - timedelta(days=60)).isoformat()
RECENT = (NOW + timedelta(days=20)).isoformat()


def candidate(slug: str, sha: str, when: str, **outcome: Any) -> list[dict[str, Any]]:
    common = {"slug": slug, "sha": sha}
    events = [
        raw_event("review_approved", approved_at=when, **common),
        raw_event("finalize_ready", ready_at=when, branch=f"feature/{slug}", **common),
        raw_event("branch_pushed", sha=sha, pushed_at=when, branch=f"feature/{slug}"),
    ]
    if outcome:
        events.append(
            raw_event(
                "integration_completed", integrated_at=when, branch=f"feature/{slug}", **common
            )
        )
    return events


async def test_replay_from_the_snapshot_and_the_tail_equals_a_full_replay_pruned(
    runtime: Runtime,
) -> None:
    manage(runtime)
    await emit(
        runtime,
        *candidate("pr-old", "1" * 40, OLD, landed=True),  # finished long ago: pruned
        *candidate("pr-done", "2" * 40, RECENT, landed=True),  # finished lately: kept
        *candidate("pr-open", "3" * 40, OLD),  # old but still queued: kept
    )
    await process(runtime)
    assert (await replay(runtime)).differences == 0
    store = ProjectionStore(runtime.redis, runtime.keys)
    expected = await store.load("acme/widgets")
    prune(expected, LATER - RETENTION)
    assert set(expected.facts.slugs) == {"pr-done", "pr-open"}

    report = await compact_partition(runtime, 0, retention=RETENTION, now=LATER)

    assert report.pruned == {"acme/widgets": 1}
    assert report.trimmed == 11  # every entry: all folded, all older than the cutoff
    assert await runtime.eventlog.length() == 0
    compacted = await store.load("acme/widgets")
    assert compacted.canonical_json() == expected.canonical_json()
    assert {i.slug for i in await queue_items(runtime)} == {"pr-done", "pr-open"}
    snapshot = await load_snapshot(runtime, runtime.keys, "acme/widgets")
    assert snapshot is not None
    assert set(snapshot.facts.slugs) == {"pr-done", "pr-open"}
    after = await replay(runtime)
    assert after.differences == 0, [r.differences for r in after.repos]

    # Life goes on after compaction: new events are folded over the compacted projection, and
    # replay (snapshot + tail) still agrees.
    await emit(runtime, *candidate("pr-new", "4" * 40, RECENT))
    await process(runtime)
    statuses = {i.slug: i.status for i in await queue_items(runtime)}
    assert statuses["pr-new"] == Status.QUEUED
    assert statuses["pr-open"] == Status.QUEUED
    again = await replay(runtime)
    assert again.entries == 3
    assert again.differences == 0, [r.differences for r in again.repos]


async def test_the_server_compacts_daily_or_when_asked(runtime: Runtime) -> None:
    manage(runtime)
    assert await compaction_due(runtime, 0, NOW) is None  # first look: the clock starts
    assert await compaction_due(runtime, 0, NOW + timedelta(hours=23)) is None
    assert await compaction_due(runtime, 0, NOW + timedelta(days=1)) == 30
    await runtime.redis.hset(runtime.keys.compaction(0), "requested", "7")
    assert await compaction_due(runtime, 0, NOW) == 7


async def test_compact_asks_the_server_holding_the_partition_and_waits_for_it(
    runtime: Runtime,
) -> None:
    manage(runtime)
    await emit(runtime, *candidate("pr-old", "1" * 40, OLD, landed=True))
    await process(runtime)
    server = Lease(runtime.redis, runtime.keys, "partition 0", "events", "server", 30, 10,
                   key=runtime.keys.processor_lease(0))  # fmt: skip
    assert await server.acquire()

    async def server_tick() -> None:
        await until(lambda: compaction_due(runtime, 0), "a compaction request")
        days = await compaction_due(runtime, 0)
        assert days is not None
        await compact_partition(runtime, 0, retention=timedelta(days=days))

    ticking = asyncio.ensure_future(server_tick())
    [line] = await compact_command(runtime, 1.0)
    await ticking
    assert line.startswith("partition 0: compacted by the server holding it")
    assert set((await ProjectionStore(runtime.redis, runtime.keys).load(REPO)).facts.slugs) == set()


def test_compact_on_an_empty_store_says_so(
    cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compact"]) == 0
    assert "partition 0: nothing folded yet, nothing to compact" in capsys.readouterr().out
