"""Performs a translation: store its events, queue its command, publish its check wake-up.

Shared by the webhook and `mergebot ingest-event`, so a GitHub event stores the same envelopes
whichever way it arrived. Only Redis is touched here (no GitHub, no git): it is on the request path.
Envelope ids are `<id prefix>:<index>` — the prefix is the GitHub delivery id for webhooks —
so a redelivery is recognized by the event log's idempotency and stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mergebot.events import CanonicalEvent, Envelope, envelope_for
from mergebot.github.translated import SOURCE, Draft, PendingApproval, Translation
from mergebot.runtime import Runtime
from mergebot.store.commands import CommandInbox
from mergebot.store.eventlog import AppendResult
from mergebot.store.rounds import ReviewRounds

log = logging.getLogger("mergebot.github.intake")


@dataclass(frozen=True)
class IntakeResult:
    stored: list[AppendResult]
    command_new: bool | None = None  # None: the translation had no command
    signalled: str | None = None

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "stored": [{"id": r.id, "duplicate": r.duplicate} for r in self.stored]
        }
        if self.command_new is not None:
            body["command"] = "queued" if self.command_new else "duplicate"
        if self.signalled is not None:
            body["signalled"] = self.signalled
        return body


async def envelopes(
    runtime: Runtime,
    drafts: Sequence[Draft],
    *,
    id_prefix: str,
    source: str = SOURCE,
    received_at: datetime | None = None,
) -> list[Envelope]:
    """The envelopes of `drafts`, with review rounds assigned (a Redis call per approval)."""
    rounds = ReviewRounds(runtime.redis, runtime.keys)
    out: list[Envelope] = []
    for index, draft in enumerate(drafts):
        event: CanonicalEvent
        if isinstance(draft, PendingApproval):
            review_round = await rounds.round_for(
                draft.repo, draft.slug, draft.reviewer, draft.approval_id
            )
            event = draft.complete(review_round)
        else:
            event = draft
        out.append(
            envelope_for(
                event, source=source, event_id=f"{id_prefix}:{index}", received_at=received_at
            )
        )
    return out


async def perform(
    runtime: Runtime, translation: Translation, *, id_prefix: str, source: str = SOURCE
) -> IntakeResult:
    """Make a translation durable. Raises RedisError/OSError when Redis cannot store it, and
    EventConflictError when the ids were used before for different events."""
    stored: list[AppendResult] = []
    if translation.events:
        batch = await envelopes(runtime, translation.events, id_prefix=id_prefix, source=source)
        stored = await runtime.eventlog.append_many(batch)
        for env, result in zip(batch, stored, strict=True):
            log.info(
                "github_event_stored id=%s name=%s repo=%s duplicate=%s",
                env.id,
                env.name,
                env.repo,
                result.duplicate,
            )
    command_new: bool | None = None
    if translation.command is not None:
        request = translation.command
        inbox = CommandInbox(runtime.redis, runtime.keys)
        command_new, entry = await inbox.add(request.dedupe_key, request.model_dump_json())
        log.info(
            "github_command_queued repo=%s slug=%s command=%s comment=%s entry=%s new=%s",
            request.repo,
            request.slug,
            request.command,
            request.comment_id,
            entry,
            command_new,
        )
    signalled: str | None = None
    if translation.signal is not None:
        await runtime.redis.publish(
            runtime.keys.check_signals(translation.signal.repo), translation.signal.sha
        )
        signalled = translation.signal.sha
    return IntakeResult(stored, command_new, signalled)
