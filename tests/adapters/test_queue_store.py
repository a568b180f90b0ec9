"""The durable queue on real Redis: dedup, FIFO, atomic transitions with history and changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from mergebot.queue import IntegrationRecord, InvalidTransitionError, QueueItem, Status
from mergebot.store.connection import RedisClient, connect
from mergebot.store.keys import Keys
from mergebot.store.queue import ItemNotFoundError, QueueStore, UnexpectedStatusError

REPO = "acme/widgets"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def item(slug: str = "pr-1", sha: str = "a" * 40, minutes: int = 0) -> QueueItem:
    at = T0 + timedelta(minutes=minutes)
    return QueueItem(
        repo=REPO, base="main", slug=slug, branch=f"feature/{slug}", sha=sha,
        status=Status.QUEUED, ready_at=at, updated_at=at,
    )  # fmt: skip


@pytest.fixture
def store(redis: RedisClient, keys: Keys) -> QueueStore:
    return QueueStore(redis, keys)


async def changes(redis: RedisClient, keys: Keys) -> list[dict[str, str]]:
    rows = cast(list[tuple[str, dict[str, str]]], await redis.xrange(keys.changes(REPO)))
    return [fields for _id, fields in rows]


async def test_enqueue_dedups_by_slug_branch_sha(store: QueueStore) -> None:
    assert await store.enqueue(item())
    assert not await store.enqueue(item(minutes=5))
    [stored] = await store.items(REPO, "main")
    assert stored.ready_at == T0
    assert [c.status for c in stored.history] == [Status.QUEUED]


async def test_items_are_fifo_by_ready_at_not_by_arrival(store: QueueStore) -> None:
    await store.enqueue(item("pr-3", "3" * 40, minutes=3))
    await store.enqueue(item("pr-1", "1" * 40, minutes=1))
    await store.enqueue(item("pr-2", "2" * 40, minutes=2))
    assert [i.slug for i in await store.items(REPO, "main")] == ["pr-1", "pr-2", "pr-3"]
    nxt = await store.next_queued(REPO, "main")
    assert nxt is not None
    assert nxt.slug == "pr-1"


async def test_transition_records_history_and_appends_change(
    store: QueueStore, redis: RedisClient, keys: Keys
) -> None:
    await store.enqueue(item())
    it = item()
    moved = await store.transition(
        REPO, "main", it.id, Status.IN_PROGRESS, cause="integrator picked it", at=T0
    )
    assert moved.status == Status.IN_PROGRESS
    blocked = await store.transition(
        REPO, "main", it.id, Status.BLOCKED, cause="merge conflict",
        followup_id="pr-1-integration-blocked-aaaaaaa", reasons=["conflict in a.txt"],
        integration=IntegrationRecord.model_validate({"files": ["a.txt"]}),
    )  # fmt: skip
    stored = await store.get(REPO, "main", it.id)
    assert stored == blocked
    assert [c.status for c in stored.history] == ["queued", "in_progress", "blocked"]
    assert stored.followup_id == "pr-1-integration-blocked-aaaaaaa"
    assert stored.reasons == ["conflict in a.txt"]
    log = await changes(redis, keys)
    assert [(c["from"], c["to"]) for c in log] == [
        ("", "queued"),
        ("queued", "in_progress"),
        ("in_progress", "blocked"),
    ]
    assert log[2]["cause"] == "merge conflict"
    assert QueueItem.model_validate_json(log[2]["item"]).status == Status.BLOCKED


async def test_annotate_records_a_new_place_without_a_status_change(
    store: QueueStore, redis: RedisClient, keys: Keys
) -> None:
    await store.enqueue(item())
    it = item()
    started = IntegrationRecord(owner="w1", car=2, stacked_on="pr-0")
    await store.transition(REPO, "main", it.id, Status.IN_PROGRESS, cause="picked",
                           integration=started)  # fmt: skip
    place = IntegrationRecord(car=1, stacked_on="base")
    moved = await store.annotate(REPO, "main", it.id, place, expect=Status.IN_PROGRESS,
                                 cause="rebuilt as car 1 on base")  # fmt: skip
    stored = await store.get(REPO, "main", it.id)
    assert stored == moved
    assert stored is not None
    assert (stored.integration.owner, stored.integration.car) == ("w1", 1)  # merged, not replaced
    assert stored.integration.stacked_on == "base"
    assert [c.status for c in stored.history] == ["queued", "in_progress"]  # no status change
    log = await changes(redis, keys)
    assert [(c["from"], c["to"], c["cause"]) for c in log[1:]] == [
        ("queued", "in_progress", "picked"),
        ("in_progress", "in_progress", "rebuilt as car 1 on base"),
    ]
    assert QueueItem.model_validate_json(log[2]["item"]).integration.car == 1
    # An item in another status, or none, is left alone.
    await store.transition(REPO, "main", it.id, Status.CANCELLED, cause="withdrawn")
    again = IntegrationRecord(car=3)
    assert await store.annotate(REPO, "main", it.id, again, expect=Status.IN_PROGRESS,
                                cause="rebuilt") is None  # fmt: skip
    assert await store.annotate(REPO, "main", "nope", again, expect=Status.IN_PROGRESS,
                                cause="rebuilt") is None  # fmt: skip
    assert len(await changes(redis, keys)) == 4
    cancelled = await store.get(REPO, "main", it.id)
    assert cancelled is not None
    assert cancelled.integration.car == 1


async def test_illegal_transition_is_refused_and_nothing_changes(
    store: QueueStore, redis: RedisClient, keys: Keys
) -> None:
    await store.enqueue(item())
    with pytest.raises(InvalidTransitionError, match="from queued to blocked"):
        await store.transition(REPO, "main", item().id, Status.BLOCKED, cause="nope")
    stored = await store.get(REPO, "main", item().id)
    assert stored is not None
    assert stored.status == Status.QUEUED
    assert len(await changes(redis, keys)) == 1


async def test_expect_refuses_when_someone_moved_it_first(store: QueueStore) -> None:
    await store.enqueue(item())
    await store.transition(REPO, "main", item().id, Status.CANCELLED, cause="withdrawn")
    with pytest.raises(UnexpectedStatusError, match="is cancelled, not queued"):
        await store.transition(
            REPO, "main", item().id, Status.SUPERSEDED, cause="x", expect=Status.QUEUED
        )


async def test_unknown_item_is_reported(store: QueueStore) -> None:
    with pytest.raises(ItemNotFoundError):
        await store.transition(REPO, "main", "nope", Status.CANCELLED, cause="x")


async def test_final_items_leave_the_active_queue_but_keep_their_record(
    store: QueueStore,
) -> None:
    await store.enqueue(item("pr-1", "1" * 40))
    await store.enqueue(item("pr-2", "2" * 40, minutes=1))
    await store.transition(REPO, "main", item("pr-1", "1" * 40).id, Status.INTEGRATED, cause="x")
    assert [i.slug for i in await store.active(REPO, "main")] == ["pr-2"]
    assert [i.status for i in await store.items(REPO, "main")] == ["integrated", "queued"]
    assert [i.slug for i in await store.by_status(REPO, "main", Status.INTEGRATED)] == ["pr-1"]


async def test_cancelled_candidate_can_be_queued_again_integrated_never(
    store: QueueStore,
) -> None:
    await store.enqueue(item())
    await store.transition(REPO, "main", item().id, Status.CANCELLED, cause="closed")
    assert await store.enqueue(item(minutes=9), cause="reopened")
    again = await store.get(REPO, "main", item().id)
    assert again is not None
    assert again.status == Status.QUEUED
    assert [c.status for c in again.history] == ["queued", "cancelled", "queued"]
    await store.transition(REPO, "main", item().id, Status.INTEGRATED, cause="on base")
    assert not await store.enqueue(item(minutes=20))


async def test_concurrent_transitions_exactly_one_wins(
    store: QueueStore, redis_url: str, keys: Keys
) -> None:
    """Many writers race from queued; the CAS lets one through and refuses the rest."""
    await store.enqueue(item())
    clients = [connect(redis_url) for _ in range(8)]
    try:
        targets = [Status.IN_PROGRESS, Status.CANCELLED, Status.SUPERSEDED, Status.INTEGRATED] * 2

        async def move(client: RedisClient, target: Status) -> Status | None:
            try:
                await QueueStore(client, keys).transition(
                    REPO, "main", item().id, target, cause="race", expect=Status.QUEUED
                )
            except InvalidTransitionError:
                return None
            return target

        results = await asyncio.gather(*(move(c, t) for c, t in zip(clients, targets, strict=True)))
    finally:
        for client in clients:
            await client.aclose()
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = await store.get(REPO, "main", item().id)
    assert stored is not None
    assert stored.status == winners[0]
    assert len(stored.history) == 2


async def test_reschedule_moves_a_waiting_item_and_corrects_a_finished_one(
    store: QueueStore,
) -> None:
    await store.enqueue(item("pr-1", "1" * 40, minutes=5))
    await store.enqueue(item("pr-2", "2" * 40, minutes=3))
    assert await store.reschedule(REPO, "main", item("pr-1", "1" * 40).id, T0)
    assert [i.slug for i in await store.active(REPO, "main")] == ["pr-1", "pr-2"]
    pr2 = item("pr-2", "2" * 40).id
    await store.transition(REPO, "main", pr2, Status.IN_PROGRESS, cause="x")
    await store.transition(REPO, "main", pr2, Status.INTEGRATED, cause="x")
    later = T0 + timedelta(minutes=9)
    assert await store.reschedule(REPO, "main", pr2, later)
    finished = await store.get(REPO, "main", pr2)
    assert finished is not None
    assert (finished.status, finished.ready_at) == (Status.INTEGRATED, later)
    assert len(finished.history) == 3  # not a status change
    assert [i.slug for i in await store.active(REPO, "main")] == ["pr-1"]
    assert not await store.reschedule(REPO, "main", item("pr-3", "3" * 40).id, T0)


async def test_a_higher_priority_comes_first_but_never_overtakes_an_item_in_progress(
    store: QueueStore,
) -> None:
    for n in (1, 2, 3, 4):
        await store.enqueue(item(f"pr-{n}", str(n) * 40, minutes=n))
    first = item("pr-1", "1" * 40).id
    await store.transition(REPO, "main", first, Status.IN_PROGRESS, cause="picked")
    # pr-4 (the youngest) is raised above everyone, pr-2 is lowered below everyone.
    assert await store.reschedule(
        REPO, "main", item("pr-4", "4" * 40).id, T0 + timedelta(minutes=4), 5
    )
    assert await store.reschedule(
        REPO, "main", item("pr-2", "2" * 40).id, T0 + timedelta(minutes=2), -1
    )
    active = await store.active(REPO, "main")
    assert [(i.slug, i.priority) for i in active] == [
        ("pr-4", 5), ("pr-1", 0), ("pr-3", 0), ("pr-2", -1),
    ]  # fmt: skip
    nxt = await store.next_queued(REPO, "main")
    assert nxt is not None
    assert nxt.slug == "pr-4"
    stored = await store.get(REPO, "main", first)
    assert stored is not None
    assert stored.status is Status.IN_PROGRESS  # taken before the change: it keeps its car
    # The same priority again is not a write; equal priorities fall back to ready_at.
    assert await store.reschedule(
        REPO, "main", item("pr-3", "3" * 40).id, T0 + timedelta(minutes=3), 5
    )
    assert [i.slug for i in await store.items(REPO, "main")][:2] == ["pr-3", "pr-4"]


async def test_enqueue_many_over_repos_and_past_a_chunk_writes_what_enqueue_would(
    store: QueueStore, redis: RedisClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mergebot.store.queue._ENQUEUE_CHUNK", 2)  # five items: three calls
    other = item(slug="pr-9", sha="9" * 40).model_copy(update={"repo": "acme/gadgets"})
    mine = [item(slug=f"pr-{i}", sha=f"{i}" * 40, minutes=i) for i in range(1, 5)]
    before = await store.version(REPO, "main")
    done = await store.enqueue_many(
        [
            (mine[0], "ready"),
            (other, "ready"),
            *((m, "ready") for m in mine[1:]),
            (mine[0], "again"),
        ]
    )
    assert done == [True, True, True, True, True, False]  # the repeat is found, not doubled
    assert [i.slug for i in await store.active(REPO, "main")] == ["pr-1", "pr-2", "pr-3", "pr-4"]
    assert [i.slug for i in await store.active("acme/gadgets", "main")] == ["pr-9"]
    assert [(c["id"], c["from"], c["to"], c["cause"]) for c in await changes(
        redis, keys
    )] == [(m.id, "", "queued", "ready") for m in mine]  # fmt: skip
    assert await store.version(REPO, "main") != before
    [first] = [i for i in await store.items(REPO, "main") if i.id == mine[0].id]
    assert [(h.status, h.cause) for h in first.history] == [(Status.QUEUED, "ready")]


async def test_enqueue_many_writes_new_items_in_one_go_and_revives_or_skips_known_ones(
    store: QueueStore,
) -> None:
    old, kept = item(sha="a" * 40), item(slug="pr-2", sha="b" * 40)
    assert await store.enqueue(old)
    assert await store.enqueue(kept)
    await store.transition(REPO, "main", old.id, Status.CANCELLED, cause="not ready")
    new = item(slug="pr-3", sha="c" * 40)
    done = await store.enqueue_many([(old, "ready again"), (kept, "ready"), (new, "ready")])
    assert done == [True, False, True]
    items = {i.id: i for i in await store.items(REPO, "main")}
    assert [h.status for h in items[old.id].history] == [
        Status.QUEUED, Status.CANCELLED, Status.QUEUED,
    ]  # fmt: skip
    assert items[new.id].status == Status.QUEUED
    assert len(items[kept.id].history) == 1
