"""What one sink last showed about one slug, and the order of a lifecycle's stages (pure).

Both sides of a conversation need these: `notify/` plans each message against the record, and
`store/` keeps it in the repo's conversations hash. They live here, below both, so storage never
imports the notifier.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from mergebot.config import NotifyEvent

# Within one instant, the later stage of a lifecycle wins (a "started" never overwrites a
# "blocked" written in the same millisecond).
RANK: dict[NotifyEvent, int] = {
    NotifyEvent.QUEUED: 0,
    NotifyEvent.RESUMED: 0,
    NotifyEvent.STARTED: 1,
    NotifyEvent.BLOCKED: 2,
    NotifyEvent.COMPLETED: 3,
    NotifyEvent.SUPERSEDED: 3,
    NotifyEvent.CANCELLED: 3,
    NotifyEvent.FROZEN: 2,
    NotifyEvent.UNFROZEN: 3,
}


class Conversation(BaseModel):
    """What one sink last showed about one slug."""

    model_config = ConfigDict(frozen=True)

    kind: NotifyEvent
    sha: str
    at: datetime
    notification_id: str
    message_id: str | None = None

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.at, RANK[self.kind])
