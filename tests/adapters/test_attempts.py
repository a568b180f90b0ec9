"""Attempt records, follow-up ids and outcome events: what makes a crash lose nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from mergebot.attempts import Attempt, AttemptStore, Outcome, blocked_event, completed_event
from mergebot.config import Mode
from mergebot.queue import QueueItem, Status
from mergebot.store.connection import RedisClient
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys

SHA = "1234567" + "a" * 33
WHEN = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ITEM = QueueItem(
    repo="acme/widgets", base="main", slug="pr-1", branch="feature/one", sha=SHA,
    status=Status.IN_PROGRESS, ready_at=WHEN, updated_at=WHEN,
)  # fmt: skip


async def test_followup_ids_count_up_per_candidate(redis: RedisClient, keys: Keys) -> None:
    store = AttemptStore(redis, keys)
    ids = [await store.allocate_followup("acme/widgets", "pr-1", SHA) for _ in range(3)]
    assert ids == [
        "pr-1-integration-blocked-1234567",
        "pr-1-integration-blocked-1234567-2",
        "pr-1-integration-blocked-1234567-3",
    ]
    assert await store.allocate_followup("acme/widgets", "pr-2", SHA) == (
        "pr-2-integration-blocked-1234567"
    )


async def test_records_round_trip_and_drop(redis: RedisClient, keys: Keys) -> None:
    store = AttemptStore(redis, keys)
    record = Attempt(item_id=ITEM.id, base_sha="b" * 40, commit="c" * 40, mode=Mode.SHADOW)
    await store.put("acme/widgets", "main", record)
    assert await store.get("acme/widgets", "main", ITEM.id) == record
    await store.drop("acme/widgets", "main", ITEM.id)
    assert await store.get("acme/widgets", "main", ITEM.id) is None


async def test_emitting_an_outcome_twice_stores_it_once(eventlog: EventLog) -> None:
    landed = Attempt(
        item_id=ITEM.id, base_sha="b" * 40, commit="c" * 40, main_after="c" * 40,
        outcome=Outcome.LANDED, decided_at=WHEN,
    )  # fmt: skip
    first = await eventlog.append(completed_event(ITEM, landed))
    again = await eventlog.append(completed_event(ITEM, landed))
    assert again.duplicate
    assert again.entry_id == first.entry_id
    stored = await eventlog.get(first.id, "acme/widgets")
    assert stored is not None
    assert stored.envelope.source == "integrator"
    assert stored.envelope.payload["main_before"] == "b" * 40
    assert stored.envelope.payload["mode"] == "live"
    # Each block has its own follow-up, hence its own event.
    blocked = landed.model_copy(
        update={"outcome": Outcome.BLOCKED, "reason": "merge_conflict",
                "details": {"files": ["a"]}, "followup_id": "pr-1-integration-blocked-1234567"}
    )  # fmt: skip
    later = blocked.model_copy(update={"followup_id": "pr-1-integration-blocked-1234567-2"})
    assert blocked_event(ITEM, blocked).id != blocked_event(ITEM, later).id
