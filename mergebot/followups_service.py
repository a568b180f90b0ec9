"""Follow-ups' own consumer: opens a follow-up for every blocked integration and resolves a
slug's follow-ups when it lands or is withdrawn — whether or not any chat sink is configured.

It reads every event-log partition through its own consumer group ("followups"), so follow-ups
neither wait for nor depend on notifications: a slow or failing chat sink holds up only its own
outbox. Both effects are idempotent (a follow-up's id comes from the blocked event, a resolved one
stays resolved, a claim survives a redelivered block), so an entry read twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from functools import partial

from mergebot.events import Envelope, EventName
from mergebot.followups import FollowupStateError, FollowupStatus, from_blocked, resolve
from mergebot.runtime import Runtime
from mergebot.services import keep_running
from mergebot.store.followups import FollowupStore

log = logging.getLogger("mergebot.followups")

GROUP = "followups"
RESOLVER = "mergebot"
BLOCK_MS = 1000  # how long a reader waits for new entries
RECLAIM_IDLE_MS = 60_000  # entries another consumer holds this long are taken over


class FollowupConsumer:
    """Reads the event log and keeps the follow-up records in step with it."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        consumer: str | None = None,
        reclaim_idle_ms: int = RECLAIM_IDLE_MS,
    ) -> None:
        self.runtime = runtime
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self.reclaim_idle_ms = reclaim_idle_ms
        self.store = FollowupStore(runtime.redis, runtime.keys)

    async def handle_event(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if envelope.name is EventName.INTEGRATION_BLOCKED:
            followup = from_blocked(envelope, previous_id=None, now=datetime.now(UTC))
            stored, created = await self.store.create(followup)
            if created:
                log.info(
                    "followup_opened repo=%s slug=%s id=%s previous=%s",
                    stored.repo,
                    stored.slug,
                    stored.id,
                    stored.previous_id,
                )
        elif envelope.name is EventName.INTEGRATION_COMPLETED:
            sha7 = str(payload["main_after"])[:7]
            await self._resolve_slug(envelope, f"integrated as {sha7}")
        elif envelope.name is EventName.CANDIDATE_WITHDRAWN:
            await self._resolve_slug(envelope, f"withdrawn ({payload['reason']})")

    async def _resolve_slug(self, envelope: Envelope, resolution: str) -> None:
        repo, slug = envelope.repo, str(envelope.payload["slug"])
        at = envelope.received_at
        for followup in await self.store.query(repo, slug=slug):
            if followup.status is FollowupStatus.RESOLVED:
                continue
            try:
                await self.store.update(
                    repo, followup.id, lambda f: resolve(f, RESOLVER, at, resolution)
                )
            except FollowupStateError:  # pragma: no cover - resolve never refuses open/claimed
                continue
            log.info(
                "followup_resolved repo=%s slug=%s id=%s %s", repo, slug, followup.id, resolution
            )

    async def intake(self, partition: int, *, block_ms: int | None = None) -> int:
        """One pass over a partition: this consumer's pending entries, a dead consumer's, new;
        each acknowledged after its effect is stored."""
        return await self.runtime.eventlog.consume(
            GROUP,
            self.consumer,
            partition,
            self.handle_event,
            reclaim_idle_ms=self.reclaim_idle_ms,
            block_ms=block_ms,
        )


async def followups_service(runtime: Runtime, stop: asyncio.Event) -> None:
    """One reader per event-log partition until `stop`."""
    consumer = FollowupConsumer(runtime)
    await asyncio.gather(
        *(
            keep_running(stop, partial(consumer.intake, p, block_ms=BLOCK_MS), name="followups")
            for p in runtime.keys.all_partitions()
        )
    )
