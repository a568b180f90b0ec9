"""One conversation per candidate: post a sink's first message about a slug, then edit it (pure).

Per (sink, repo, slug) the notifier remembers the chat message and the state it shows. Each new
notification is planned against it:

- nothing said yet → post;
- the same sha, not newer than what the message shows → skip (a late or repeated delivery must
  not move the message back from "blocked" to "started");
- a different sha that is older than what the message shows → skip (the slug has moved on),
  except after "superseded": that message is waiting for the newer sha to take over;
- the message shows a final state (completed, cancelled) and something new starts → a new message:
  the slug begins a new lifecycle;
- otherwise edit the message when the sink can, or post a new one that names the previous state.

A rebuilt car's new place in the train (`Notification.rebuilt`) only ever edits the message that
announced its start: a sink that cannot edit, or has no such message, is not told again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mergebot.config import NotifyEvent
from mergebot.conversation_record import Conversation
from mergebot.notify.notification import Notification

FINAL_KINDS = frozenset({NotifyEvent.COMPLETED, NotifyEvent.CANCELLED, NotifyEvent.UNFROZEN})


class Action(StrEnum):
    POST = "post"
    EDIT = "edit"
    SKIP = "skip"


@dataclass(frozen=True)
class Plan:
    action: Action
    # What the message showed before (named by sinks that cannot edit); None for a new lifecycle.
    previous: Conversation | None
    why: str


def plan(current: Conversation | None, n: Notification, *, can_edit: bool) -> Plan:
    if n.rebuilt and not (
        can_edit
        and current is not None
        and current.message_id
        and current.kind is NotifyEvent.STARTED
        and current.sha == n.sha
    ):
        return Plan(Action.SKIP, current, "a rebuilt car's place only edits its started message")
    if current is None:
        return Plan(Action.POST, None, "first message about the slug")
    if current.notification_id == n.id:
        return Plan(Action.SKIP, current, "already shown")
    if n.sha == current.sha:
        if n.order <= current.order:
            return Plan(Action.SKIP, current, f"older than the shown {current.kind}")
    elif n.kind is NotifyEvent.SUPERSEDED:
        return Plan(Action.SKIP, current, "an older sha was superseded; a newer one is shown")
    elif n.at < current.at and current.kind is not NotifyEvent.SUPERSEDED:
        return Plan(Action.SKIP, current, "about an older sha than the one shown")
    if current.kind in FINAL_KINDS:
        return Plan(Action.POST, None, f"a new lifecycle after {current.kind}")
    if can_edit and current.message_id:
        return Plan(Action.EDIT, current, f"update the message from {current.kind}")
    return Plan(Action.POST, current, f"the sink cannot edit; name the previous {current.kind}")


def after(n: Notification, message_id: str | None) -> Conversation:
    """The conversation once `n` is shown in message `message_id`."""
    return Conversation(
        kind=n.kind, sha=n.sha, at=n.at, notification_id=n.id, message_id=message_id
    )
