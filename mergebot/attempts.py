"""What the integrator remembers about the candidate it works on, so a crash loses nothing.

One record per queue item (`keys.attempts(repo, base)`), rewritten at each step that matters:
built (base sha + integration commit, written *before* anything is pushed), then landed or
blocked (with the exact outcome event). The next lease holder reads it to decide, for an item
left `in_progress`, whether its commit already reached base (→ integrated, not merged twice),
whether its block was decided (→ blocked, same follow-up id), or neither (→ rebuilt).

Outcome events are built here from the record alone, with deterministic envelope ids, so emitting
one again after a crash stores nothing new (the event log deduplicates by id and payload).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

from mergebot.config import MergeMethod, Mode
from mergebot.events import Envelope, IntegrationBlocked, IntegrationCompleted, envelope_for
from mergebot.queue import IntegrationRecord, QueueItem
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys

SOURCE = "integrator"


class Outcome(StrEnum):
    BUILT = "built"  # integration commit exists; nothing decided yet
    LANDED = "landed"  # base moved to the commit (or, in shadow mode, would have)
    BLOCKED = "blocked"


class Attempt(BaseModel):
    """The integrator's record of its current attempt at one queue item."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    attempt: int = 1
    mode: Mode = Mode.LIVE
    method: MergeMethod = MergeMethod.MERGE
    base_sha: str | None = None
    commit: str | None = None
    branch: str | None = None  # the integration branch name
    pushed: bool = False  # the integration branch may exist on the remote
    outcome: Outcome = Outcome.BUILT
    decided_at: datetime | None = None
    main_after: str | None = None
    checks: list[dict[str, Any]] = Field(default_factory=list)
    # The check running now: {"name", "kind", "started_at"} (what the dashboard shows).
    running: dict[str, str] | None = None
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    followup_id: str | None = None
    batch: list[str] = Field(default_factory=list)  # the slugs checked together (a batch)


class AttemptStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def get(self, repo: str, base: str, item_id: str) -> Attempt | None:
        raw = cast(str | None, await self.redis.hget(self.keys.attempts(repo, base), item_id))
        return Attempt.model_validate_json(raw) if raw else None

    async def put(self, repo: str, base: str, attempt: Attempt) -> None:
        await self.redis.hset(
            self.keys.attempts(repo, base), attempt.item_id, attempt.model_dump_json()
        )

    async def drop(self, repo: str, base: str, item_id: str) -> None:
        await self.redis.hdel(self.keys.attempts(repo, base), item_id)

    async def allocate_followup(self, repo: str, slug: str, sha: str) -> str:
        """`<slug>-integration-blocked-<sha7>`, then `-2`, `-3`… for later blocks of the same
        candidate; atomic (HINCRBY), so concurrent blocks never share an id."""
        stem = followup_stem(slug, sha)
        count = int(await self.redis.hincrby(self.keys.followup_counters(repo), stem, 1))
        return stem if count == 1 else f"{stem}-{count}"


def followup_stem(slug: str, sha: str) -> str:
    return f"{slug}-integration-blocked-{sha[:7]}"


def _event_id(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
    return f"{SOURCE}:{digest}"


def completed_event(item: QueueItem, attempt: Attempt) -> Envelope:
    """`integration_completed` for a landed attempt (same record, same envelope)."""
    assert attempt.decided_at is not None
    assert attempt.main_after is not None
    event = IntegrationCompleted(
        repo=item.repo,
        slug=item.slug,
        branch=item.branch,
        sha=item.sha,
        main_before=attempt.base_sha or attempt.main_after,
        main_after=attempt.main_after,
        integrated_at=attempt.decided_at,
        checks=attempt.checks,
        base=item.base,
        method=attempt.method.value,
        mode=attempt.mode.value,
        **({"batch": attempt.batch} if attempt.batch else {}),
    )
    return envelope_for(
        event,
        source=SOURCE,
        event_id=_event_id("completed", item.repo, item.base, item.id, attempt.mode),
    )


def blocked_event(item: QueueItem, attempt: Attempt) -> Envelope:
    """`integration_blocked` for a blocked attempt; the follow-up id makes each block unique."""
    assert attempt.decided_at is not None
    assert attempt.reason is not None
    assert attempt.followup_id is not None
    event = IntegrationBlocked(
        repo=item.repo,
        slug=item.slug,
        branch=item.branch,
        sha=item.sha,
        reason=attempt.reason,
        details=attempt.details,
        blocked_at=attempt.decided_at,
        followup_id=attempt.followup_id,
        base=item.base,
        mode=attempt.mode.value,
        # What the follow-up shows: the base commit merged onto, the commit checked and its
        # branch (so a person can see what conflicted, and rebuild the checked tree).
        **{
            key: value
            for key, value in (
                ("base_sha", attempt.base_sha),
                ("integration_sha", attempt.commit),
                ("integration_branch", attempt.branch),
            )
            if value
        },
        **({"batch": attempt.batch} if attempt.batch else {}),
    )
    return envelope_for(
        event,
        source=SOURCE,
        event_id=_event_id("blocked", item.repo, item.base, item.id, attempt.followup_id),
    )


def integration_fields(attempt: Attempt) -> IntegrationRecord:
    """What the queue item records about its integration (the reporter and dashboard read it)."""
    fields: dict[str, Any] = {
        "attempt": attempt.attempt,
        "mode": attempt.mode.value,
        "method": attempt.method.value,
        "base_sha": attempt.base_sha,
        "integration_sha": attempt.commit,
        "checks": attempt.checks,
    }
    if attempt.batch:
        fields["batch"] = attempt.batch
    if attempt.outcome is Outcome.LANDED:
        fields["main_before"] = attempt.base_sha
        fields["main_after"] = attempt.main_after
        if attempt.mode is Mode.SHADOW:
            fields["would_integrate"] = attempt.commit
    if attempt.outcome is Outcome.BLOCKED:
        fields["reason"] = attempt.reason
        fields["details"] = attempt.details
    return IntegrationRecord.model_validate(fields)
