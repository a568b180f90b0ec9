"""`queue_after`: the queue that planned actions leave, performed in memory by the store's rules
(a replay rebuilds each repo's queue this way, without writing it to Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mergebot.ids import ItemId
from mergebot.plan import Enqueue, Interrupt, Move, Reschedule, queue_after
from mergebot.queue import QueueItem, Status

WHEN = datetime(2026, 11, 25, 10, tzinfo=UTC)
NOW = WHEN + timedelta(hours=1)


def item(slug: str = "pr-1", status: Status = Status.QUEUED, **more: object) -> QueueItem:
    return QueueItem.model_validate(
        {"repo": "acme/widgets", "base": "main", "slug": slug, "branch": f"feature/{slug}",
         "sha": "a" * 40, "status": status, "ready_at": WHEN, "updated_at": WHEN, **more}
    )  # fmt: skip


def test_a_recorded_block_builds_a_blocked_item_with_its_followup_and_story() -> None:
    new = item()
    key = ItemId(new.id)
    out = queue_after(
        [
            Enqueue(new, "integration recorded"),
            Move(key, Status.IN_PROGRESS, Status.QUEUED, "integration recorded"),
            Move(
                key,
                Status.BLOCKED,
                Status.IN_PROGRESS,
                "checks failed",
                reasons=["checks failed"],
                followup_id="pr-1-integration-blocked-aaaaaaa",
            ),
        ],
        {},
        NOW,
    )
    [built] = out.values()
    assert built.status == Status.BLOCKED
    assert built.followup_id == "pr-1-integration-blocked-aaaaaaa"
    assert built.reasons == ["checks failed"]
    assert [(c.status, c.at) for c in built.history] == [
        (Status.QUEUED, WHEN), (Status.IN_PROGRESS, NOW), (Status.BLOCKED, NOW),
    ]  # fmt: skip


def test_moves_the_store_would_refuse_are_skipped_and_the_input_is_left_alone() -> None:
    queued, done = item("pr-1"), item("pr-2", Status.INTEGRATED)
    items = {queued.id: queued, done.id: done}
    out = queue_after(
        [
            Move(ItemId(queued.id), Status.CANCELLED, Status.BLOCKED, "expects another status"),
            Move(ItemId(done.id), Status.QUEUED, Status.INTEGRATED, "final: may not move"),
            Move(
                ItemId("pr-9:" + "b" * 40 + ":feature/pr-9"),
                Status.CANCELLED,
                Status.QUEUED,
                "no such item",
            ),
            Interrupt(queued.id, "for the lease holder"),
        ],
        items,
        NOW,
    )
    assert out == items
    assert out is not items


def test_queueing_revives_a_finished_record_and_is_a_no_op_over_a_live_one() -> None:
    cancelled = item("pr-1", Status.CANCELLED)
    queued = item("pr-2")
    again = item("pr-1").model_copy(update={"updated_at": NOW})
    out = queue_after(
        [Enqueue(again, "ready again"), Enqueue(item("pr-2"), "already queued")],
        {cancelled.id: cancelled, queued.id: queued},
        NOW,
    )
    assert out[cancelled.id].status == Status.QUEUED
    assert len(out[cancelled.id].history) == len(cancelled.history) + 1
    assert out[queued.id] is queued


def test_a_reschedule_corrects_ready_at_and_priority() -> None:
    waiting = item()
    later = WHEN + timedelta(minutes=5)
    out = queue_after([Reschedule(ItemId(waiting.id), later, 3)], {waiting.id: waiting}, NOW)
    assert (out[waiting.id].ready_at, out[waiting.id].priority) == (later, 3)
    assert out[waiting.id].status == Status.QUEUED
