"""The command inbox: `/mergebot` comment commands waiting for the command worker.

A Redis stream read through one consumer group, plus a hash that deduplicates by the comment (so a
redelivered webhook, or the same comment seen by a webhook and by an Actions job, is one command).
The add is a Lua script (dedupe check and XADD together); the keys share the `{commands}` tag.
An entry is acknowledged and deleted once its effect is stored; the dedupe hash stays.
The inbox stores opaque JSON text: what a command means is the GitHub package's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.stream import Row, StreamGroup

GROUP = "commands"

_ADD_LUA = """
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {0, existing} end
local entry = redis.call('XADD', KEYS[1], '*', 'key', ARGV[1], 'record', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], entry)
return {1, entry}
"""


@dataclass(frozen=True)
class InboxEntry:
    entry_id: str
    key: str
    record: str


def _entries(rows: list[Row]) -> list[InboxEntry]:
    return [InboxEntry(entry_id, fields["key"], fields["record"]) for entry_id, fields in rows]


class CommandInbox:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._add = redis.register_script(_ADD_LUA)
        self._group = StreamGroup(redis, GROUP)

    async def add(self, key: str, record: str) -> tuple[bool, str]:
        """Store a command unless one with `key` was stored before: (is new, stream entry id)."""
        reply = await self._add(
            keys=[self.keys.commands(), self.keys.command_ids()], args=[key, record]
        )
        return bool(int(reply[0])), str(reply[1])

    async def ensure_group(self) -> None:
        await self._group.ensure(self.keys.commands())

    async def read(
        self, consumer: str, *, count: int = 20, block_ms: int | None = None
    ) -> list[InboxEntry]:
        rows = await self._group.read_one(
            consumer, self.keys.commands(), count=count, block_ms=block_ms
        )
        return _entries(rows)

    async def reclaim(
        self, consumer: str, *, min_idle_ms: int, count: int = 20
    ) -> list[InboxEntry]:
        """Entries another consumer (or an earlier failed try) left pending long enough."""
        rows = await self._group.reclaim(
            consumer, self.keys.commands(), min_idle_ms=min_idle_ms, count=count
        )
        return _entries(rows)

    async def attempt(self, entry_id: str) -> int:
        """Count one more try of an entry; returns the number of tries so far."""
        return int(await self.redis.hincrby(self.keys.command_attempts(), entry_id, 1))

    async def done(self, entry_id: str) -> None:
        """Acknowledge and drop a handled entry (its effect is already stored)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.keys.commands(), GROUP, entry_id)
            pipe.xdel(self.keys.commands(), entry_id)
            pipe.hdel(self.keys.command_attempts(), entry_id)
            await pipe.execute()

    async def pending_count(self) -> int:
        return await self._group.pending_count(self.keys.commands())

    async def length(self) -> int:
        return int(await self.redis.xlen(self.keys.commands()))
