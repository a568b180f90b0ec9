"""Priorities as values: the queue's order, the slug's current priority, the processor's plan."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from mergebot.events import EventError, parse_event, parse_priority
from mergebot.plan import Reschedule, new_item, plan
from mergebot.queue import QueueItem, Status, queue_order
from mergebot.readiness import RepoFacts, Rules, evaluate, fold
from tests.factories import REPO, SHA_A, raw_event
from tests.fakegit import FakeGit

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def item(slug: str, minutes: int, priority: int = 0) -> QueueItem:
    at = T0 + timedelta(minutes=minutes)
    return QueueItem(
        repo=REPO, base="main", slug=slug, branch=f"feature/{slug}", sha=SHA_A,
        status=Status.QUEUED, ready_at=at, updated_at=at, priority=priority,
    )  # fmt: skip


def test_higher_priority_first_then_older_ready_at() -> None:
    items = [item("old", 0), item("urgent", 9, 3), item("low", -5, -1), item("new", 5)]
    assert [i.slug for i in sorted(items, key=queue_order)] == ["urgent", "old", "new", "low"]


def priority_event(value: int, minute: int, by: str = "carol") -> dict[str, object]:
    return raw_event(
        "priority_set", priority=value, set_by=by, at=f"2026-11-25T10:{minute:02d}:00+00:00"
    )


READY = [
    raw_event("review_approved"),
    raw_event("finalize_ready"),
    raw_event("branch_pushed"),
]


def states_after(events: list[dict[str, object]]) -> int:
    facts = RepoFacts(repo=REPO)
    for raw in events:
        fold(facts, parse_event(raw).event)
    [state] = evaluate(facts, Rules(), FakeGit()).values()
    return state.priority


def test_the_newest_priority_set_counts_in_any_order() -> None:
    events = [*READY, priority_event(5, 3), priority_event(-2, 7), priority_event(9, 1)]
    for order in itertools.permutations(events):
        assert states_after(list(order)) == -2
    assert states_after(READY) == 0


def test_two_priorities_of_one_second_do_not_depend_on_arrival() -> None:
    a, b = priority_event(1, 4, "ann"), priority_event(8, 4, "bob")
    assert states_after([*READY, a, b]) == states_after([*READY, b, a]) == 8


@pytest.mark.parametrize("value", [1001, -1001, True, "5", 2.5])
def test_priority_values_are_bounded_whole_numbers(value: object) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(raw_event("priority_set", priority=value))
    assert caught.value.errors[0]["loc"] == ["priority"]


@pytest.mark.parametrize("text", ["high", "1e3", "", "10000", "-1001", "0x10"])
def test_written_priorities_are_refused_with_the_range(text: str) -> None:
    with pytest.raises(ValueError, match="whole number from -1000 to 1000"):
        parse_priority(text)


def test_written_priorities_parse() -> None:
    assert [parse_priority(t) for t in ("7", " -3 ", "+2", "1000")] == [7, -3, 2, 1000]


def test_the_plan_gives_a_new_priority_to_queued_and_in_progress_items_alike() -> None:
    facts = RepoFacts(repo=REPO)
    for raw in [*READY, priority_event(4, 5)]:
        fold(facts, parse_event(raw).event)
    states = evaluate(facts, Rules(), FakeGit())
    [state] = states.values()
    fresh = plan(REPO, "main", states, {}, T0)
    assert [a.item.priority for a in fresh if hasattr(a, "item")] == [4]
    queued = new_item(REPO, "main", state, T0).model_copy(update={"priority": 0})
    for status in (Status.QUEUED, Status.IN_PROGRESS):
        current = queued.model_copy(update={"status": status})
        actions = plan(REPO, "main", states, {current.id: current}, T0)
        # A priority change reorders; it never moves an item's status (no pre-emption).
        assert actions == [Reschedule(current.id, current.ready_at, 4)]
