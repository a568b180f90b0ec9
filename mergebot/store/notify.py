"""Redis side of notification delivery: per-sink outboxes, the per-(notification, sink) dedupe
record, conversations (which chat message shows a slug) and dead letters.

The outbox and the dedupe record of a repo share its hash tag, so "record the delivery as queued
and put the job in the sink's outbox" is one Lua script: a crash between them cannot queue a job
twice or lose it. Dead letters are global (one list for `mergebot status`), written before the job
is acknowledged, so an undeliverable message is always somewhere visible.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from mergebot.conversation_record import Conversation
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.stream import Row, StreamGroup

OUTBOX_GROUP = "deliver"

# KEYS: deliveries hash, then one outbox stream per target.
# ARGV: notification id, state JSON, then per target: sink key, job JSON.
_FAN_OUT_LUA = """
local queued = 0
for i = 1, #KEYS - 1 do
  local sink, job = ARGV[i * 2 + 1], ARGV[i * 2 + 2]
  if redis.call('HSETNX', KEYS[1], sink .. ' ' .. ARGV[1], ARGV[2]) == 1 then
    redis.call('XADD', KEYS[i + 1], '*', 'nid', ARGV[1], 'job', job)
    queued = queued + 1
  end
end
return queued
"""

# KEYS: deliveries hash, conversations hash.
# ARGV: delivery field, state JSON, conversation field, conversation JSON ('' = none).
_FINISH_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) end
return 1
"""

# KEYS: deliveries hash, outbox. ARGV: delivery field, state JSON, notification id, job JSON.
_REQUEUE_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XADD', KEYS[2], '*', 'nid', ARGV[3], 'job', ARGV[4])
"""


class DeliveryState(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    DEAD = "dead"


DONE = frozenset({DeliveryState.DELIVERED, DeliveryState.SKIPPED, DeliveryState.DEAD})


@dataclass(frozen=True)
class Delivery:
    state: DeliveryState
    attempts: int = 0
    last_error: str | None = None
    message_id: str | None = None
    at: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "state": self.state.value,
                "attempts": self.attempts,
                "last_error": self.last_error,
                "message_id": self.message_id,
                "at": self.at or datetime.now(UTC).isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Delivery:
        raw = json.loads(text)
        return cls(
            DeliveryState(raw["state"]),
            int(raw.get("attempts") or 0),
            raw.get("last_error"),
            raw.get("message_id"),
            raw.get("at"),
        )


@dataclass(frozen=True)
class OutboxJob:
    entry_id: str
    notification_id: str
    job: dict[str, Any]


def _jobs(rows: list[Row]) -> list[OutboxJob]:
    return [
        OutboxJob(entry_id, fields["nid"], json.loads(fields["job"]))
        for entry_id, fields in rows
        if "job" in fields
    ]


def dead_letter_id(repo: str, sink: str, notification_id: str) -> str:
    return hashlib.sha256(f"{repo}\n{sink}\n{notification_id}".encode()).hexdigest()[:20]


def _field(sink: str, other: str) -> str:
    return f"{sink} {other}"


class NotifyStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._fan_out = redis.register_script(_FAN_OUT_LUA)
        self._finish = redis.register_script(_FINISH_LUA)
        self._requeue = redis.register_script(_REQUEUE_LUA)
        self._outbox = StreamGroup(redis, OUTBOX_GROUP)

    # -- outboxes --------------------------------------------------------------------------------
    async def fan_out(
        self, repo: str, notification_id: str, jobs: list[tuple[str, dict[str, Any]]]
    ) -> int:
        """Queue `notification_id` for each (sink key, job) not queued before; how many were."""
        if not jobs:
            return 0
        await self.redis.sadd(self.keys.notify_outboxes(), *{f"{repo} {s}" for s, _ in jobs})
        argv: list[str] = [notification_id, Delivery(DeliveryState.QUEUED).to_json()]
        for sink, job in jobs:
            argv += [sink, json.dumps(job)]
        outboxes = [self.keys.notify_outbox(repo, sink) for sink, _ in jobs]
        return int(
            await self._fan_out(keys=[self.keys.notify_deliveries(repo), *outboxes], args=argv)
        )

    async def outboxes(self) -> list[tuple[str, str]]:
        members = cast(set[str], await self.redis.smembers(self.keys.notify_outboxes()))
        pairs = [tuple(m.split(" ", 1)) for m in members if " " in m]
        return sorted((p[0], p[1]) for p in pairs)

    async def ensure_outbox_group(self, repo: str, sink: str) -> None:
        await self._outbox.ensure(self.keys.notify_outbox(repo, sink))

    async def read_outbox(
        self,
        repo: str,
        sink: str,
        consumer: str,
        *,
        pending: bool = False,
        count: int = 10,
        block_ms: int | None = None,
    ) -> list[OutboxJob]:
        stream = self.keys.notify_outbox(repo, sink)
        rows = await self._outbox.read_one(
            consumer, stream, pending=pending, count=count, block_ms=block_ms
        )
        return _jobs(rows)

    async def reclaim_outbox(
        self, repo: str, sink: str, consumer: str, *, min_idle_ms: int, count: int = 10
    ) -> list[OutboxJob]:
        stream = self.keys.notify_outbox(repo, sink)
        rows = await self._outbox.reclaim(consumer, stream, min_idle_ms=min_idle_ms, count=count)
        return _jobs(rows)

    async def ack(self, repo: str, sink: str, entry_id: str) -> None:
        # Dropped from the outbox once acknowledged: the delivery record keeps the outcome.
        await self._outbox.ack(self.keys.notify_outbox(repo, sink), entry_id, delete=True)

    async def outbox_length(self, repo: str, sink: str) -> int:
        return int(await self.redis.xlen(self.keys.notify_outbox(repo, sink)))

    # -- delivery records and conversations ------------------------------------------------------
    async def delivery(self, repo: str, sink: str, notification_id: str) -> Delivery | None:
        raw = await self.redis.hget(
            self.keys.notify_deliveries(repo), _field(sink, notification_id)
        )
        return Delivery.from_json(cast(str, raw)) if raw else None

    async def record_attempt(
        self, repo: str, sink: str, notification_id: str, attempts: int, error: str
    ) -> None:
        state = Delivery(DeliveryState.QUEUED, attempts, error)
        await self.redis.hset(
            self.keys.notify_deliveries(repo), _field(sink, notification_id), state.to_json()
        )

    async def finish(
        self,
        repo: str,
        sink: str,
        notification_id: str,
        state: Delivery,
        *,
        slug: str,
        conversation: Conversation | None,
    ) -> None:
        """Record the outcome and, when something was shown, the conversation — atomically."""
        await self._finish(
            keys=[self.keys.notify_deliveries(repo), self.keys.notify_conversations(repo)],
            args=[
                _field(sink, notification_id),
                state.to_json(),
                _field(sink, slug),
                conversation.model_dump_json() if conversation else "",
            ],
        )

    async def conversation(self, repo: str, sink: str, slug: str) -> Conversation | None:
        raw = await self.redis.hget(self.keys.notify_conversations(repo), _field(sink, slug))
        return Conversation.model_validate_json(cast(str, raw)) if raw else None

    # -- dead letters ----------------------------------------------------------------------------
    async def dead_letter(self, record: dict[str, Any]) -> None:
        await self.redis.hset(self.keys.dead_letters(), record["id"], json.dumps(record))

    async def dead_letters(self, repo: str | None = None) -> list[dict[str, Any]]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.dead_letters()))
        records = [json.loads(v) for v in raw.values()]
        if repo is not None:
            records = [r for r in records if r.get("repo") == repo]
        return sorted(records, key=lambda r: (str(r.get("at")), str(r.get("id"))))

    async def dead_letter_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in await self.dead_letters():
            counts[record["repo"]] = counts.get(record["repo"], 0) + 1
        return counts

    async def retry_dead_letter(self, letter_id: str) -> dict[str, Any] | None:
        """Put a dead letter's job back in its sink's outbox with fresh attempts; None when there
        is no such dead letter. The record is removed only after the job is queued again."""
        raw = await self.redis.hget(self.keys.dead_letters(), letter_id)
        if raw is None:
            return None
        record = cast(dict[str, Any], json.loads(cast(str, raw)))
        repo, sink, nid = record["repo"], record["sink"], record["notification_id"]
        await self.redis.sadd(self.keys.notify_outboxes(), f"{repo} {sink}")
        await self.ensure_outbox_group(repo, sink)
        await self._requeue(
            keys=[self.keys.notify_deliveries(repo), self.keys.notify_outbox(repo, sink)],
            args=[
                _field(sink, nid),
                Delivery(DeliveryState.QUEUED).to_json(),
                nid,
                json.dumps(record["job"]),
            ],
        )
        await self.redis.hdel(self.keys.dead_letters(), letter_id)
        return record


async def dead_letter_count(redis: RedisClient, keys: Keys, repo: str | None = None) -> int:
    """For `mergebot status` and the queue API: how many notifications of `repo` are dead."""
    if repo is None:
        return int(await redis.hlen(keys.dead_letters()))
    return len(await NotifyStore(redis, keys).dead_letters(repo))
