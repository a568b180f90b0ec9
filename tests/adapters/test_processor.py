"""The processor on real Redis: log -> projection -> queue -> READY hook, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import cast

import pytest

from mergebot import processor
from mergebot.forge.errors import ForgeError
from mergebot.main import background_services
from mergebot.processor import (
    GROUP,
    BatchResult,
    Projector,
    git_source,
    process_entries,
    processor_service,
    projector_for,
    read_batch,
    tick,
)
from mergebot.queue import Status
from mergebot.runtime import Runtime
from mergebot.store.eventlog import LogEntry
from mergebot.store.lease import Lease
from mergebot.store.projection import ProjectionStore
from mergebot.store.queue import QueueStore
from tests.brainkit import emit, hook, live, manage, process, queue_items
from tests.factories import REPO, SHA_A, SHA_B
from tests.fakeforge import FakeForge
from tests.unit.test_readiness import READY_SET, approve, at, finalize, push, raw_event
from tests.waiting import until


async def queued_changes(runtime: Runtime) -> list[dict[str, str]]:
    rows = cast(
        list[tuple[str, dict[str, str]]],
        await runtime.redis.xrange(runtime.keys.changes(REPO)),
    )
    return [f for _id, f in rows if f["to"] == "queued"]


async def test_ready_candidate_is_queued_once_and_the_integrator_is_told(
    runtime: Runtime,
) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    assert await process(runtime) == 3
    [item] = await queue_items(runtime)
    assert (item.slug, item.sha, item.status) == ("pr-1", SHA_A, Status.QUEUED)
    assert item.ready_at.isoformat() == "2026-11-25T10:02:00+00:00"
    assert hook(runtime).calls == [(REPO, "main")]
    pending = await runtime.eventlog.pending(GROUP, 0)
    assert pending.count == 0


async def test_duplicated_and_reordered_events_enqueue_exactly_once(runtime: Runtime) -> None:
    manage(runtime)
    order = [READY_SET[2], READY_SET[1], READY_SET[0], READY_SET[2], READY_SET[0]]
    for i, raw in enumerate(order):  # one batch each, every copy under its own delivery id
        await emit(runtime, raw, ids=[f"delivery-{i}"])
        await process(runtime)
    assert len(await queued_changes(runtime)) == 1
    assert len(hook(runtime).calls) == 1
    notes = await ProjectionStore(runtime.redis, runtime.keys).counters(REPO)
    assert notes == {"duplicate": 2}


async def test_supersession_marks_the_older_queued_item(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    await emit(runtime, finalize(SHA_B, minute=7), push(SHA_B, minute=6), approve("bob", SHA_B))
    await process(runtime)
    items = {i.sha: i for i in await queue_items(runtime)}
    assert items[SHA_A].status == Status.SUPERSEDED
    assert "superseded by bbbbbbb" in items[SHA_A].history[-1].cause
    assert items[SHA_B].status == Status.QUEUED


@pytest.mark.parametrize("newer", ["0" * 40, "f" * 40])
async def test_the_change_stream_supersedes_the_old_item_before_queueing_the_new(
    runtime: Runtime, newer: str
) -> None:
    """The notifier edits one message per slug in stream order: it must end on the new item."""
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    await emit(runtime, finalize(newer, minute=7), push(newer, minute=6), approve("bob", newer))
    await process(runtime)
    rows = cast(
        list[tuple[str, dict[str, str]]],
        await runtime.redis.xrange(runtime.keys.changes(REPO)),
    )
    story = [(f["id"].split(":")[1][:1], f["to"]) for _id, f in rows]
    assert story == [("a", "queued"), ("a", "superseded"), (newer[:1], "queued")]


async def test_withdrawn_candidate_is_cancelled(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    await emit(runtime, raw_event("candidate_withdrawn", at=at(5), reason="closed"))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.CANCELLED
    assert item.reasons == ["withdrawn (closed)"]


async def test_dismissed_approval_takes_it_out_until_approved_again(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    await emit(
        runtime, raw_event("review_dismissed", reviewer_session_id="alice", dismissed_at=at(3))
    )
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.CANCELLED
    assert "dismissed: alice" in item.reasons[0]
    await emit(runtime, approve(minute=4, review_round=2))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.QUEUED
    assert len(hook(runtime).calls) == 2


async def test_blocked_then_resumed_goes_back_to_the_queue(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    [item] = await queue_items(runtime)
    # What the integrator does under its lease: take it, block it, record the event.
    await store.transition(REPO, "main", item.id, Status.IN_PROGRESS, cause="picked")
    await store.transition(
        REPO, "main", item.id, Status.BLOCKED, cause="merge conflict",
        followup_id="pr-1-integration-blocked-aaaaaaa",
    )  # fmt: skip
    await emit(runtime, raw_event("integration_blocked", blocked_at=at(10)))
    await process(runtime)
    assert (await queue_items(runtime))[0].status == Status.BLOCKED
    await emit(runtime, raw_event("resume_requested", at=at(11)))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.QUEUED
    assert item.history[-1].cause == "resume requested"
    assert hook(runtime).calls == [(REPO, "main"), (REPO, "main")]


async def test_in_progress_items_are_left_to_the_lease_holder(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    [item] = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", item.id, Status.IN_PROGRESS, cause="picked")
    await emit(runtime, raw_event("candidate_withdrawn", at=at(5), reason="closed"))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.IN_PROGRESS


async def test_a_late_finalize_corrects_ready_at_of_a_taken_or_finished_item(
    runtime: Runtime,
) -> None:
    """`mergebot status` shows the same ready_at whatever order the log delivered events in."""
    manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    [item] = await queue_items(runtime)
    store = QueueStore(runtime.redis, runtime.keys)
    await store.transition(REPO, "main", item.id, Status.IN_PROGRESS, cause="picked")
    await emit(runtime, finalize(minute=4))  # the same candidate finalized again, delivered late
    await process(runtime)
    [item] = await queue_items(runtime)
    assert (item.status, item.ready_at.isoformat()) == ("in_progress", at(4))
    await store.transition(REPO, "main", item.id, Status.INTEGRATED, cause="landed")
    await emit(runtime, finalize(minute=6))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert (item.status, item.ready_at.isoformat()) == ("integrated", at(6))
    assert await store.active(REPO, "main") == []  # corrected, still out of the FIFO


async def test_unmanaged_repo_events_are_stored_counted_not_integrated(
    runtime: Runtime,
) -> None:
    manage(runtime, "acme/other")
    await emit(runtime, *READY_SET)
    await process(runtime)
    assert await queue_items(runtime) == []
    assert await runtime.eventlog.length() == 3
    projections = ProjectionStore(runtime.redis, runtime.keys)
    assert await projections.counters(REPO) == {"not_managed": 3}
    [note, *_] = await projections.recent_notes(REPO)
    assert note.code == "not_managed"


async def test_crash_between_store_and_ack_does_not_apply_twice(runtime: Runtime) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET, push(minute=9, pusher="again"))
    await runtime.eventlog.ensure_group(GROUP, 0)
    entries = await runtime.eventlog.read_group(GROUP, "dying", 0, count=10)
    projector = Projector(runtime.redis, runtime.keys, runtime.server_config, git_source(runtime))
    await projector.apply(REPO, entries)  # stored… and the process dies before XACK
    assert (await runtime.eventlog.pending(GROUP, 0)).count == 4
    before = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    assert await process(runtime, consumer="successor") == 4  # reclaimed
    after = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    assert after == before
    assert len(await queued_changes(runtime)) == 1
    assert (await runtime.eventlog.pending(GROUP, 0)).count == 0


class FailingOn(Projector):
    """A projector whose applies of one repo fail (its git went away)."""

    def __init__(self, failing: str, runtime: Runtime) -> None:
        super().__init__(runtime.redis, runtime.keys, runtime.server_config, git_source(runtime))
        self.failing = failing

    async def apply(
        self, repo: str, entries: Sequence[LogEntry], *, guard: Callable[[], None] | None = None
    ) -> BatchResult:
        if repo == self.failing:
            raise RuntimeError("git went away")
        return await super().apply(repo, entries, guard=guard)


async def test_a_batch_acknowledges_the_repos_it_applied_before_one_failed(
    runtime: Runtime,
) -> None:
    other = "acme/other"
    manage(runtime, REPO, other)
    await emit(runtime, *READY_SET, *({**raw, "repo": other} for raw in READY_SET))

    projector = FailingOn(other, runtime)
    await runtime.eventlog.ensure_group(GROUP, 0)
    entries = await runtime.eventlog.read_group(GROUP, "failing", 0, count=10)
    with pytest.raises(RuntimeError):
        await process_entries(runtime, projector, 0, entries)
    assert (await runtime.eventlog.pending(GROUP, 0)).count == 3  # acme/other's, not REPO's
    assert await process(runtime, consumer="successor") == 3
    assert [i.repo for i in await queue_items(runtime, other)] == [other]
    assert len(await queued_changes(runtime)) == 1  # REPO's candidate was queued once


async def test_a_failing_repo_does_not_stop_the_repos_after_it_in_the_batch(
    runtime: Runtime,
) -> None:
    other = "acme/other"
    manage(runtime, REPO, other)
    await emit(runtime, *({**raw, "repo": other} for raw in READY_SET), *READY_SET)

    projector = FailingOn(other, runtime)
    await runtime.eventlog.ensure_group(GROUP, 0)
    entries = await runtime.eventlog.read_group(GROUP, "failing", 0, count=10)
    assert entries[0].repo == other
    with pytest.raises(RuntimeError, match="git went away"):
        await process_entries(runtime, projector, 0, entries)
    assert [i.repo for i in await queue_items(runtime)] == [REPO]
    assert hook(runtime).calls == [(REPO, "main")]
    assert (await runtime.eventlog.pending(GROUP, 0)).count == 3  # only acme/other's


async def test_a_slow_repo_does_not_hold_up_the_other_repos_of_its_batch(
    runtime: Runtime,
) -> None:
    """Repos of one batch are applied side by side: one whose git answers slowly (a big fetch)
    does not make the others wait for it."""
    slow = "acme/slow"
    manage(runtime, slow, REPO)
    await emit(runtime, *({**raw, "repo": slow} for raw in READY_SET), *READY_SET)
    others_done = asyncio.Event()

    class SlowRepo(Projector):
        async def apply(
            self, repo: str, entries: Sequence[LogEntry], *, guard: Callable[[], None] | None = None
        ) -> BatchResult:
            if repo == slow:
                await asyncio.wait_for(others_done.wait(), timeout=10)
            result = await super().apply(repo, entries, guard=guard)
            if repo != slow:
                others_done.set()
            return result

    projector = SlowRepo(runtime.redis, runtime.keys, runtime.server_config, git_source(runtime))
    await runtime.eventlog.ensure_group(GROUP, 0)
    entries = await runtime.eventlog.read_group(GROUP, "c", 0, count=10)
    results = await process_entries(runtime, projector, 0, entries)
    assert [r.repo for r in results] == [slow, REPO]  # in the batch's order
    assert sorted(i.repo for i in await queue_items(runtime, slow)) == [slow]
    assert [i.repo for i in await queue_items(runtime)] == [REPO]
    assert (await runtime.eventlog.pending(GROUP, 0)).count == 0


async def test_a_backlog_is_read_a_batch_at_a_time(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor, "READ_COUNT", 2)
    monkeypatch.setattr(processor, "BATCH", 5)
    manage(runtime)
    await emit(runtime, *READY_SET, approve("bob"), approve("carol"), approve("dave"))
    await emit(runtime, approve("erin"))
    await runtime.eventlog.ensure_group(GROUP, 0)
    # Reads of two entries each while the backlog has more, up to five entries in all.
    assert len(await read_batch(runtime, "c", 0)) == 5
    assert len(await read_batch(runtime, "c", 0)) == 2
    assert await read_batch(runtime, "c", 0) == []


async def test_a_projector_reuses_its_stored_state_only_while_nobody_replaced_it(
    runtime: Runtime,
) -> None:
    manage(runtime)
    await emit(runtime, *READY_SET, approve("bob"), approve("carol"))
    entries = [e async for e in runtime.eventlog.replay(repo=REPO)]
    mine, other = projector_for(runtime), projector_for(runtime)

    def fail() -> None:
        raise RuntimeError("lease lost")

    # A batch that fails before its store leaves nothing behind, in Redis or in memory.
    with pytest.raises(RuntimeError):
        await mine.apply(REPO, entries[:3], guard=fail)
    assert (await mine.apply(REPO, entries[:3])).queued != []
    # Another processor stores a newer projection: the next batch starts from that one (its
    # checkpoint skips the entry the other one applied), not from the state held in memory.
    assert (await other.apply(REPO, entries[3:4])).applied == 1
    result = await mine.apply(REPO, entries[3:])
    assert (result.skipped, result.applied) == (1, 1)
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [cand] = state.candidates.values()
    assert {a.reviewer for a in state.facts.slugs["pr-1"].approvals} == {"alice", "bob", "carol"}
    assert cand.status == "ready"


async def test_git_trouble_leaves_the_queue_alone(runtime: Runtime) -> None:
    git = manage(runtime)
    await emit(runtime, *READY_SET)
    await process(runtime)
    git.broken = "fetch failed: connection refused"
    await emit(runtime, push(minute=9, pusher="again"))
    await process(runtime)
    [item] = await queue_items(runtime)
    assert item.status == Status.QUEUED
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [cand] = state.candidates.values()
    assert cand.reasons[0].text == "could not check with git: fetch failed: connection refused"


async def test_one_fetch_per_batch(runtime: Runtime) -> None:
    git = manage(runtime)
    await emit(runtime, *READY_SET, approve("bob"), approve("carol"))
    await process(runtime)
    assert git.snapshots == 1


async def test_service_folds_new_events_until_stopped(runtime: Runtime) -> None:
    manage(runtime)
    assert processor_service in background_services()
    stop = asyncio.Event()
    task = asyncio.create_task(processor_service(runtime, stop))
    try:
        await emit(runtime, *READY_SET)
        await until(lambda: bool(hook(runtime).calls), "the service to queue the candidate")
        assert [i.status for i in await queue_items(runtime)] == [Status.QUEUED]
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


@pytest.mark.parametrize("required", [2])
async def test_per_repo_rules_come_from_config(runtime: Runtime, required: int) -> None:
    manage(runtime, required_approvals=required)
    await emit(runtime, *READY_SET)
    await process(runtime)
    assert live(await queue_items(runtime)) == {}
    await emit(runtime, approve("bob"))
    await process(runtime)
    assert len(live(await queue_items(runtime))) == 1


def repo_file_forge(runtime: Runtime, text: str) -> FakeForge:
    forge = FakeForge()
    forge.files[".github/mergebot.toml"] = text
    runtime.forge_override = lambda repo: forge
    return forge


async def test_the_repos_own_config_file_sets_the_readiness_rules(runtime: Runtime) -> None:
    """The server asks for one approval; the repo's `.github/mergebot.toml` on main asks for
    two — what the integrator will use, so what readiness uses too."""
    git = manage(runtime, required_approvals=1)
    git.tips["main"] = "1" * 40
    forge = repo_file_forge(runtime, "required_approvals = 2\n")
    await emit(runtime, *READY_SET)
    await process(runtime)
    assert live(await queue_items(runtime)) == {}
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    [waiting] = state.candidates.values()
    assert "needs 2 approvals from distinct reviewers, has 1 (alice)" in waiting.reason_texts()[0]

    await emit(runtime, approve("bob"))
    await process(runtime)
    assert len(live(await queue_items(runtime))) == 1
    # Read once, at main's sha, for both batches: no forge call per event or per batch.
    assert forge.reads == [(REPO, "1" * 40, ".github/mergebot.toml")]

    # main moves (the file now says 3): read again, once, at the new sha.
    git.tips["main"] = "2" * 40
    forge.files[".github/mergebot.toml"] = "required_approvals = 3\n"
    two = [approve("carol", SHA_B, slug="pr-2"), finalize(SHA_B, 3, "f/two", slug="pr-2")]
    await emit(runtime, *two, push(SHA_B, 1, "f/two"))
    await process(runtime)
    assert [ref for _repo, ref, _path in forge.reads] == ["1" * 40, "2" * 40]
    state = await ProjectionStore(runtime.redis, runtime.keys).load(REPO)
    assert "needs 3 approvals" in state.candidates[f"pr-2:{SHA_B}:f/two"].reason_texts()[0]


async def test_an_invalid_or_unreadable_repo_file_leaves_the_servers_rules(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    git = manage(runtime, required_approvals=1)
    git.tips["main"] = "1" * 40
    forge = repo_file_forge(runtime, 'required_approvals = "two"\n')
    await emit(runtime, *READY_SET)
    await process(runtime)
    # Queued by the server's rules; the integrator refuses to build and explains the file.
    assert len(live(await queue_items(runtime))) == 1
    assert "repo_config_invalid" in caplog.text
    assert len(forge.reads) == 1

    git.tips["main"] = "2" * 40
    forge.read_error = ForgeError("GitHub is down", retryable=True)
    await emit(runtime, approve("carol", SHA_B, slug="pr-2"))
    await process(runtime)
    await emit(runtime, approve("dave", SHA_B, slug="pr-2"))
    await process(runtime)
    assert "repo_config_unreadable" in caplog.text
    assert len(forge.reads) == 2  # not asked again on the next batch
    assert len(live(await queue_items(runtime))) == 1


async def test_periodic_tick_reasks_git_and_reannounces_queued_work(runtime: Runtime) -> None:
    git = manage(runtime)
    await emit(runtime, *READY_SET, approve(slug="pr-2", sha=SHA_B))
    await emit(runtime, finalize(SHA_B, 3, "feature/two", slug="pr-2"))
    await process(runtime)
    assert len(await queue_items(runtime)) == 1  # pr-2 waits: no push yet
    hook(runtime).calls.clear()
    git.on_base_shas.add(SHA_A)  # someone merged pr-1 by hand; no event says so
    projector = Projector(runtime.redis, runtime.keys, runtime.server_config, git)
    lease = Lease(
        runtime.redis,
        runtime.keys,
        "partition 0",
        "events",
        "me",
        key=runtime.keys.processor_lease(0),
    )
    assert await lease.acquire()
    await tick(runtime, projector, 0, lease)
    [item] = await queue_items(runtime)
    assert item.status == Status.INTEGRATED
    assert hook(runtime).calls == []  # nothing queued any more: nobody is woken up
    await emit(runtime, push(SHA_B, 4, "feature/two"))
    await process(runtime)
    hook(runtime).calls.clear()
    await tick(runtime, projector, 0, lease)
    assert hook(runtime).calls == [(REPO, "main")]  # queued work is announced again
