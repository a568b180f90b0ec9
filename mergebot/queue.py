"""The queue's state machine (SPEC §5), as pure data: statuses, allowed transitions, items.

Storage lives in `mergebot.store.queue`; this module only decides what is allowed, so the rules
can be tested without Redis and drawn in docs/design.md (a test keeps the drawing complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from mergebot.ids import FollowupId, ItemId, Repo, Sha, Slug


class Status(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    INTEGRATED = "integrated"
    BLOCKED = "blocked"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


# Statuses after which the same candidate may be queued again as a new entry: a PR closed and
# reopened, or an older sha finalized again after a newer one. `integrated` never comes back: a
# sha is integrated at most once.
REVIVABLE = frozenset({Status.CANCELLED, Status.SUPERSEDED})


FINAL = frozenset({Status.INTEGRATED, Status.SUPERSEDED, Status.CANCELLED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset(
        {Status.IN_PROGRESS, Status.INTEGRATED, Status.SUPERSEDED, Status.CANCELLED}
    ),
    # in_progress -> queued is crash recovery (the lease holder re-queues its own item);
    # in_progress -> cancelled: withdrawn or unapproved during its run (taken out of the train).
    Status.IN_PROGRESS: frozenset(
        {Status.INTEGRATED, Status.BLOCKED, Status.SUPERSEDED, Status.CANCELLED, Status.QUEUED}
    ),
    Status.BLOCKED: frozenset({Status.QUEUED, Status.SUPERSEDED, Status.CANCELLED}),
    Status.INTEGRATED: frozenset(),
    Status.SUPERSEDED: frozenset(),
    Status.CANCELLED: frozenset(),
}


class InvalidTransitionError(ValueError):
    def __init__(self, current: Status, target: Status) -> None:
        self.current = current
        self.target = target
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        super().__init__(
            f"queue item cannot go from {current} to {target}; from {current} it may go to "
            f"{allowed}"
        )


def check_transition(current: Status, target: Status) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransitionError(current, target)


def item_id(slug: str, branch: str, sha: str) -> ItemId:
    """Queue items are deduplicated by (slug, branch, sha): this is that key."""
    return ItemId(f"{slug}:{sha}:{branch}")


class StatusChange(BaseModel):
    model_config = ConfigDict(frozen=True)
    status: Status
    at: datetime
    cause: str


class IntegrationRecord(BaseModel):
    """What the integrator recorded on a queue item while working on it; the reporter, the
    dashboard and the gate read it. Filled in as the work goes, so every field is optional, and
    only the fields that were set are stored (`as_json`). Unknown keys of older records are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    owner: str | None = None  # the lease holder that started it
    mode: str | None = None  # "live" or "shadow"
    attempt: int | None = None
    method: str | None = None
    base_sha: str | None = None
    integration_sha: str | None = None
    sha: str | None = None  # what older records named the integration commit
    checks: list[dict[str, Any]] = Field(default_factory=list)
    main_before: str | None = None
    main_after: str | None = None
    would_integrate: str | None = None  # shadow mode: the commit that would have landed
    reason: str | None = None  # blocked: why
    details: dict[str, Any] = Field(default_factory=dict)
    car: int | None = None  # its car in the train when it started (1: on base)
    stacked_on: str | None = None  # "base", or the slug(s) of the car below it
    batch: list[str] = Field(default_factory=list)  # the slugs checked with it (a batch)

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)

    def updated(self, more: IntegrationRecord) -> IntegrationRecord:
        """These fields, with `more`'s set fields written over them."""
        return IntegrationRecord.model_validate({**self.as_json(), **more.as_json()})

    def __bool__(self) -> bool:
        return bool(self.as_json())


class QueueItem(BaseModel):
    """One candidate in a repo's queue, with every status change it went through."""

    model_config = ConfigDict(frozen=True)

    repo: Repo
    base: str
    slug: Slug
    branch: str
    sha: Sha
    status: Status
    ready_at: datetime
    updated_at: datetime
    history: list[StatusChange] = Field(default_factory=list)
    followup_id: FollowupId | None = None
    reasons: list[str] = Field(default_factory=list)
    # What the integrator recorded while working on it (integration sha, base sha, checks…).
    integration: IntegrationRecord = Field(default_factory=IntegrationRecord)
    # The slug's priority (SPEC §5): higher first, then ready_at. Corrected by the processor
    # whenever a `priority_set` changes it, like ready_at.
    priority: int = 0

    @property
    def id(self) -> ItemId:
        return item_id(self.slug, self.branch, self.sha)

    @field_serializer("integration")
    def _integration_as_stored(self, integration: IntegrationRecord) -> dict[str, Any]:
        """Only the fields the integrator set, as before the model existed."""
        return integration.as_json()


def enqueued(
    item: QueueItem, existing: QueueItem | None, cause: str
) -> tuple[QueueItem, StatusChange] | None:
    """What queueing `item` stores where `existing` is stored (None: nothing): the item with
    one history entry, or, over a cancelled or superseded one, queued again with that history
    continued; None when any other existing item makes it a no-op. The store and the replay's
    in-memory queue both move items by these functions, so the two cannot disagree."""
    if item.status != Status.QUEUED:
        raise ValueError(f"a new queue item must be queued, not {item.status}")
    change = StatusChange(status=Status.QUEUED, at=item.updated_at, cause=cause)
    history = [change]
    if existing is not None:
        if existing.status not in REVIVABLE:
            return None
        history = [*existing.history, change]
    return item.model_copy(update={"history": history}), change


def moved(
    item: QueueItem,
    to: Status,
    *,
    at: datetime,
    cause: str,
    followup_id: str | None = None,
    reasons: list[str] | None = None,
    integration: IntegrationRecord | None = None,
) -> tuple[QueueItem, StatusChange]:
    """`item` moved to `to` at `at` (InvalidTransitionError when it may not go there), with the
    history entry of the move; `reasons` replaces its reasons, `integration` is merged into
    what the integrator recorded before."""
    check_transition(item.status, to)
    change = StatusChange(status=to, at=at, cause=cause)
    update: dict[str, Any] = {"status": to, "updated_at": at, "history": [*item.history, change]}
    if followup_id is not None:
        update["followup_id"] = followup_id
    if reasons is not None:
        update["reasons"] = list(reasons)
    if integration is not None:
        update["integration"] = item.integration.updated(integration)
    return item.model_copy(update=update), change


def rescheduled(item: QueueItem, ready_at: datetime, priority: int | None) -> QueueItem | None:
    """`item` with a corrected `ready_at` and (when given) priority; None when both already
    are what it holds."""
    update: dict[str, Any] = {}
    if item.ready_at != ready_at:
        update["ready_at"] = ready_at.astimezone(UTC)
    if priority is not None and item.priority != priority:
        update["priority"] = priority
    return item.model_copy(update=update) if update else None


def queue_order(item: QueueItem) -> tuple[int, datetime, str]:
    """The queue's order (SPEC §5): higher priority first, then the older `ready_at`, then the
    id, so two items never compare equal and every reader sees the same order."""
    return (-item.priority, item.ready_at, item.id)


# -- the queue change stream (written by store/queue.py, read by reporter, notifier, demo) --
class ChangeError(ValueError):
    """A change stream entry that does not have the agreed shape."""


@dataclass(frozen=True)
class Change:
    """One parsed change-stream entry."""

    entry_id: str
    item: QueueItem
    previous: str | None
    to: Status
    at: datetime
    cause: str


def parse_change(repo: str, entry_id: str, fields: dict[str, str]) -> Change:
    """The entry `entry_id` of `repo`'s change stream, or `ChangeError` saying what is wrong."""
    try:
        item = QueueItem.model_validate_json(fields["item"])
        to = Status(fields["to"])
        at = datetime.fromisoformat(fields["at"]) if fields.get("at") else item.updated_at
    except (KeyError, ValueError, ValidationError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise ChangeError(f"change {entry_id} of {repo} is malformed: {detail}") from None
    return Change(
        entry_id=entry_id,
        item=item,
        previous=fields.get("from") or None,
        to=to,
        at=at if at.tzinfo else at.replace(tzinfo=UTC),
        cause=fields.get("cause", ""),
    )
