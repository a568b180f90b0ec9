"""What the queue should do about candidate states: pure decisions, performed by the processor.

The rules are idempotent and depend only on the candidate's state and its queue item (if any),
so a redelivered batch, a replay, or events in another order reach the same queue:

| candidate        | item                 | action                                         |
|------------------|----------------------|------------------------------------------------|
| ready            | none / cancelled / superseded | enqueue (NOT_READY -> READY)          |
| ready (resumed)  | blocked by that block | back to queued                                |
| waiting          | queued               | cancelled (not ready any more; comes back when ready) |
| waiting (resumed)| blocked by that block | cancelled                                     |
| superseded       | queued / blocked     | superseded                                     |
| withdrawn        | queued / blocked     | cancelled                                      |
| blocked (event)  | none / queued / …    | recorded as blocked (replay of an integration) |
| integrated       | queued (…)           | integrated                                     |

Before any of these, every item that is still a record of the candidate (anything but
cancelled or superseded) gets the candidate's `ready_at` and its slug's `priority` when they
differ: the newest `finalize_ready` of the candidate and the newest `priority_set` of the slug,
functions of the facts. A `finalize_ready` can arrive after
the item was taken or finished (a late delivery, another batching on replay), so correcting only
waiting items would leave the result depending on the order events came in.

Items `in_progress` belong to the lease holder: the processor never moves them (a `ready_at`
correction is not a move). When such a candidate is withdrawn, superseded or waiting again (an
approval dismissed, its branch moved), the processor `Interrupt`s the holder instead: it re-checks
the candidate at once and takes it out of the train (SPEC §11: within 5 s of the event).
Candidates git could not be asked about (`git_unavailable`) are left
alone until git answers again, except for that correction, which git does not decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mergebot.ids import ItemId
from mergebot.queue import (
    REVIVABLE,
    InvalidTransitionError,
    QueueItem,
    Status,
    enqueued,
    moved,
    rescheduled,
)
from mergebot.readiness import CandidateState, CandidateStatus

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Enqueue:
    item: QueueItem
    cause: str


@dataclass(frozen=True)
class Move:
    item_id: ItemId
    to: Status
    expect: Status
    cause: str
    reasons: list[str] | None = None
    followup_id: str | None = None


@dataclass(frozen=True)
class Reschedule:
    item_id: ItemId
    ready_at: datetime
    priority: int = 0


@dataclass(frozen=True)
class Interrupt:
    """Tell the lease holder that the candidate of an `in_progress` item changed."""

    item_id: str
    cause: str


Action = Enqueue | Move | Reschedule | Interrupt


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)

    def add(self, *actions: Action) -> None:
        self.actions.extend(actions)


def new_item(repo: str, base: str, state: CandidateState, now: datetime) -> QueueItem:
    assert state.branch is not None
    assert state.sha is not None
    assert state.ready_at is not None
    return QueueItem(
        repo=repo,
        base=base,
        slug=state.slug,
        branch=state.branch,
        sha=state.sha,
        status=Status.QUEUED,
        ready_at=state.ready_at,
        updated_at=now,
        priority=state.priority,
    )


def _resumed_block(state: CandidateState, item: QueueItem) -> bool:
    return state.resumed_followup is not None and item.followup_id in (
        None,
        state.resumed_followup,
    )


def plan(
    repo: str,
    base: str,
    states: dict[str, CandidateState],
    items: dict[str, QueueItem],
    now: datetime,
) -> list[Action]:
    """The queue actions for `states` given the current items (keyed by item id).

    Per slug, older candidates are acted on first and the current one (the newest
    `finalize_ready`) last, so the change stream tells the story in order: the old item is
    superseded before its successor is queued, whatever the shas' spelling (readers such as the
    notifier keep one message per slug and follow the stream's order).
    """
    out = Plan()
    for state in sorted(states.values(), key=_story_order):
        if not state.is_candidate:
            continue
        item = items.get(state.key)
        _correct_ready_at(out, state, item)
        if state.git_unknown():
            continue
        _plan_one(out, repo=repo, base=base, state=state, item=item, now=now)
    return out.actions


def _story_order(state: CandidateState) -> tuple[str, datetime, bool, str]:
    """By slug, then by ready_at; in a tie the superseded ones first (the current candidate of
    a second is picked by `previous_sha` or git ancestry, not by its spelling), then by key."""
    return (
        state.slug,
        state.ready_at or _NEVER,
        state.status != CandidateStatus.SUPERSEDED,
        state.key,
    )


def _correct_ready_at(out: Plan, state: CandidateState, item: QueueItem | None) -> None:
    """Give an existing item the candidate's `ready_at` and priority (whatever its status but
    gone). A new priority reorders waiting items only: the integrator takes the next item from
    the queued ones, so an item in progress is never pre-empted."""
    if item is None or item.status in REVIVABLE or state.ready_at is None:
        return
    if item.ready_at != state.ready_at or item.priority != state.priority:
        out.add(Reschedule(item.id, state.ready_at, state.priority))


def _plan_one(
    out: Plan,
    *,
    repo: str,
    base: str,
    state: CandidateState,
    item: QueueItem | None,
    now: datetime,
) -> None:
    key = ItemId(state.key)  # a Move only ever targets the item found under this key
    current = item.status if item is not None else None
    absent = item is None or current in REVIVABLE
    reasons = state.reason_texts()
    why = "; ".join(reasons)
    match state.status:
        case CandidateStatus.READY:
            if absent:
                out.add(Enqueue(new_item(repo, base, state, now), "became ready"))
            elif item is not None and current == Status.BLOCKED and _resumed_block(state, item):
                out.add(Move(key, Status.QUEUED, Status.BLOCKED, "resume requested", reasons=[]))
        case CandidateStatus.WAITING | CandidateStatus.SUPERSEDED | CandidateStatus.WITHDRAWN if (
            current == Status.IN_PROGRESS
        ):
            out.add(Interrupt(key, why or str(state.status)))
        case CandidateStatus.WAITING:
            if current == Status.QUEUED:
                cause = f"not ready any more: {why}"
                out.add(Move(key, Status.CANCELLED, Status.QUEUED, cause, reasons=reasons))
            elif item is not None and current == Status.BLOCKED and _resumed_block(state, item):
                cause = f"resumed but not ready: {why}"
                out.add(Move(key, Status.CANCELLED, Status.BLOCKED, cause, reasons=reasons))
        case CandidateStatus.SUPERSEDED:
            if current in (Status.QUEUED, Status.BLOCKED):
                assert current is not None
                out.add(Move(key, Status.SUPERSEDED, current, why, reasons=reasons))
        case CandidateStatus.WITHDRAWN:
            if current in (Status.QUEUED, Status.BLOCKED):
                assert current is not None
                out.add(Move(key, Status.CANCELLED, current, why, reasons=reasons))
        case CandidateStatus.BLOCKED:
            steps: list[Action] = []
            if absent:
                steps.append(Enqueue(new_item(repo, base, state, now), "integration recorded"))
            if absent or current == Status.QUEUED:
                steps.append(Move(key, Status.IN_PROGRESS, Status.QUEUED, "integration recorded"))
                steps.append(
                    Move(
                        key,
                        Status.BLOCKED,
                        Status.IN_PROGRESS,
                        why,
                        reasons=reasons,
                        followup_id=state.followup_id,
                    )
                )
            out.add(*steps)
        case CandidateStatus.INTEGRATED:
            if state.by_event:
                if absent:
                    out.add(Enqueue(new_item(repo, base, state, now), "integration recorded"))
                if current == Status.BLOCKED:
                    out.add(Move(key, Status.QUEUED, Status.BLOCKED, "integration recorded"))
                if absent or current in (Status.QUEUED, Status.BLOCKED):
                    out.add(Move(key, Status.INTEGRATED, Status.QUEUED, why))
            elif current == Status.QUEUED:
                out.add(
                    Move(key, Status.INTEGRATED, Status.QUEUED, f"found already on base: {why}")
                )


def queue_after(
    actions: Sequence[Action], items: Mapping[str, QueueItem], now: datetime
) -> dict[str, QueueItem]:
    """The items (by id) that `actions` leave, performed on `items` in memory by the rules the
    store performs them by (`enqueued`, `moved`, `rescheduled`), moves at `now`. A move the
    store would refuse (the item gone, in another status than expected, or not allowed to go
    there) is skipped, as the processor skips it; an `Interrupt` is for the lease holder and
    changes no item. A replay rebuilds a queue this way instead of writing it to Redis and
    reading it back."""
    out = dict(items)
    for action in actions:
        match action:
            case Enqueue(item=item, cause=cause):
                found = enqueued(item, out.get(item.id), cause)
                if found is not None:
                    out[item.id] = found[0]
            case Move(item_id=key, to=to, expect=expect):
                current = out.get(key)
                if current is None or current.status != expect:
                    continue
                try:
                    out[key], _ = moved(
                        current, to, at=now, cause=action.cause, followup_id=action.followup_id,
                        reasons=action.reasons,
                    )  # fmt: skip
                except InvalidTransitionError:
                    continue
            case Reschedule(item_id=key, ready_at=ready_at, priority=priority):
                current = out.get(key)
                if current is not None:
                    out[key] = rescheduled(current, ready_at, priority) or current
            case Interrupt():
                pass
    return out
