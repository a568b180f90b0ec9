"""What a notification is, and how log entries and queue changes become one (pure).

Two sources feed the notifier:

- the queue change streams (`keys.changes(repo)`), the ordered lifecycle of every candidate:
  queued, started, resumed, superseded, cancelled;
- the event log, for the two outcomes that carry facts a person needs: `integration_blocked`
  (conflict files, failed checks, the follow-up) and `integration_completed` (the new base sha).
  The queue changes to `blocked` and `integrated` are therefore not notified a second time.

A candidate that the processor finds already on base (queued → integrated with no integration) is
not announced: mergebot did nothing to it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mergebot.config import Mode, NotifyEvent
from mergebot.conversation_record import RANK
from mergebot.events import Envelope, EventName
from mergebot.queue import Change, IntegrationRecord, Status, parse_change

# Notified from the event log, so their queue changes are skipped.
FROM_EVENT_LOG = frozenset({NotifyEvent.BLOCKED, NotifyEvent.COMPLETED})

_NEW_ITEM = frozenset({"", "none", "null", "new"})
# Changes the processor makes when it re-records an outcome the integrator already reported (a
# replay, a recovery): the outcome itself is notified once from its event, so these are not news.
BOOKKEEPING_CAUSES = frozenset({"integration recorded"})


class Notification(BaseModel):
    """One thing to tell people about one candidate. `id` deduplicates deliveries per sink."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: NotifyEvent
    repo: str
    slug: str
    branch: str
    sha: str
    at: datetime
    base: str | None = None
    cause: str = ""
    previous_status: str | None = None
    followup_id: str | None = None
    reason: str | None = None
    reasons: list[str] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
    main_before: str | None = None
    main_after: str | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)
    # Its car in the train when it started (1 is on base) and what that car is stacked on; with
    # `rebuilt`, its car's new place after a rebuild (the integrator's record changed, not the
    # status), shown by editing the started message.
    car: int | None = None
    stacked_on: str | None = None
    rebuilt: bool = False
    # The slugs checked together with it in one integration commit (a batch), in queue order.
    batch: list[str] = Field(default_factory=list)
    # `shadow`: the integrator only decided (nothing pushed); told as "would integrate".
    mode: Mode = Mode.LIVE
    # The stored envelope (event-log notifications) or the change record in envelope form; the
    # generic webhook sink posts it as `event`.
    envelope: dict[str, Any] = Field(default_factory=dict)

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.at, RANK[self.kind])


def change_kind(previous: str | None, to: str) -> NotifyEvent | None:
    """The notification a queue status change means, or None when it means none."""
    before = (previous or "").strip().lower()
    target = Status(to)
    if target is Status.QUEUED:
        if before in _NEW_ITEM:
            return NotifyEvent.QUEUED
        if before == Status.BLOCKED:
            return NotifyEvent.RESUMED
        return None  # in_progress -> queued is crash recovery, not news
    if target is Status.IN_PROGRESS:
        return NotifyEvent.STARTED
    if target is Status.INTEGRATED:
        return NotifyEvent.COMPLETED if before == Status.IN_PROGRESS else None
    if target is Status.BLOCKED:
        return NotifyEvent.BLOCKED
    if target is Status.SUPERSEDED:
        return NotifyEvent.SUPERSEDED
    return NotifyEvent.CANCELLED


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def from_change(repo: str, entry_id: str, fields: dict[str, str]) -> Notification | None:
    """A raw queue change entry as a notification (`ChangeError` when it is malformed)."""
    return change_notification(parse_change(repo, entry_id, fields))


def change_notification(change: Change) -> Notification | None:
    """A queue change (`item`, `from`, `to`, `at`, `cause`) as a notification, if it is news.

    Blocked and integrated changes return None: the event log notifies those with their facts;
    so do the processor's re-recordings of an outcome (`BOOKKEEPING_CAUSES`).
    """
    entry_id = change.entry_id
    item, to, at, cause = change.item, change.to, change.at, change.cause
    previous = change.previous
    kind = change_kind(previous, to)
    if kind is None or kind in FROM_EVENT_LOG or cause in BOOKKEEPING_CAUSES:
        return None
    notification_id = f"change:{entry_id}"
    payload = {
        "repo": item.repo,
        "base": item.base,
        "slug": item.slug,
        "branch": item.branch,
        "sha": item.sha,
        "from": previous or None,
        "to": str(to),
        "at": at.astimezone(UTC).isoformat(),
        "cause": cause,
        "followup_id": item.followup_id,
        "reasons": list(item.reasons),
    }
    envelope = {
        "id": notification_id,
        "name": str(kind),
        "type": f"mergebot.queue.{to}",
        "source": "queue",
        "received_at": payload["at"],
        "payload": payload,
    }
    return Notification(
        id=notification_id,
        kind=kind,
        repo=item.repo,
        slug=item.slug,
        branch=item.branch,
        sha=item.sha,
        at=at,
        base=item.base,
        cause=cause,
        previous_status=previous or None,
        followup_id=item.followup_id,
        reasons=list(item.reasons),
        envelope=envelope,
        rebuilt=previous == to == Status.IN_PROGRESS,
        **_train_place(item.integration) if kind is NotifyEvent.STARTED else {},
    )


def _train_place(integration: IntegrationRecord) -> dict[str, Any]:
    """The car and what it is stacked on, as the integrator recorded them when it started or
    last rebuilt it."""
    if integration.car is None or integration.stacked_on is None:
        return {}
    return {
        "car": integration.car,
        "stacked_on": integration.stacked_on,
        "batch": list(integration.batch),
    }


def queue_slug(base: str) -> str:
    """The conversation of a base's freezes: not a slug a candidate can have (a colon), so its
    chat message is never mixed with one of a candidate; the dashboard's banner has it as id."""
    return f"frozen:{base}"


def freeze_notification(envelope: Envelope) -> Notification:
    """`queue_frozen` / `queue_unfrozen` as a notification about the base's queue: why (`cause`),
    by whom, until when and, for a red base, which check failed on which sha (`details`)."""
    payload = envelope.payload
    base = str(payload["base"])
    frozen = envelope.name is EventName.QUEUE_FROZEN
    keys = ("by", "until", "kind", "check", "detail")
    details = {k: payload[k] for k in keys if isinstance(payload.get(k), str) and payload[k]}
    sha = payload.get("sha")
    return Notification(
        id=envelope.id,
        kind=NotifyEvent.FROZEN if frozen else NotifyEvent.UNFROZEN,
        repo=str(payload["repo"]),
        slug=queue_slug(base),
        branch=base,
        sha=sha if isinstance(sha, str) else "",
        at=_aware(datetime.fromisoformat(payload["at"])),
        base=base,
        cause=str(payload.get("reason") or ""),
        details=details,
        envelope=json.loads(envelope.to_json()),
    )


def from_envelope(envelope: Envelope) -> Notification | None:
    """An outcome or freeze event from the log as a notification; other events return None."""
    if envelope.name in (EventName.QUEUE_FROZEN, EventName.QUEUE_UNFROZEN):
        return freeze_notification(envelope)
    if envelope.name not in (EventName.INTEGRATION_BLOCKED, EventName.INTEGRATION_COMPLETED):
        return None
    payload = envelope.payload
    base = payload.get("base") if isinstance(payload.get("base"), str) else None
    candidate: dict[str, Any] = {
        "id": envelope.id,
        "repo": payload["repo"],
        "slug": payload["slug"],
        "branch": payload["branch"],
        "sha": payload["sha"],
        "base": base,
        "envelope": json.loads(envelope.to_json()),
    }
    if envelope.name is EventName.INTEGRATION_BLOCKED:
        details = payload.get("details")
        return Notification(
            kind=NotifyEvent.BLOCKED,
            at=_aware(datetime.fromisoformat(payload["blocked_at"])),
            cause=f"integration_blocked ({payload['reason']})",
            followup_id=payload["followup_id"],
            reason=payload["reason"],
            details=details if isinstance(details, dict) else {},
            **candidate,
        )
    checks = payload.get("checks")
    return Notification(
        kind=NotifyEvent.COMPLETED,
        at=_aware(datetime.fromisoformat(payload["integrated_at"])),
        cause="integration_completed",
        main_before=payload["main_before"],
        main_after=payload["main_after"],
        checks=[c for c in checks if isinstance(c, dict)] if isinstance(checks, list) else [],
        mode=Mode.SHADOW if payload.get("mode") == Mode.SHADOW else Mode.LIVE,
        **candidate,
    )
