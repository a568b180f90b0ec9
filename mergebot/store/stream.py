"""Reading Redis streams through consumer groups: the one implementation every reader uses.

Every stream mergebot reads through a group — the event log (processor, notifier), the command
inbox, the notification outboxes and the queue change streams (GitHub reporter, notifier) — is
read by a `StreamGroup`. It creates its group once (idempotently), reads new entries or the
consumer's own pending ones, reclaims entries another consumer left pending too long (XAUTOCLAIM),
and acknowledges an entry only when its reader says the effect is stored (`ack`: readers call it
after the effect of each entry, so delivery is at least once). The event log, read by three groups
at ingest rates, takes what is there now through a script of its own that packs the reply
(`EventLog.read_group`); its waiting, reclaiming and acknowledging still go through here.

An entry a reader cannot parse is a *poison entry* (`Unreadable`): `readable` records it through
`mergebot.store.poison` (where the `Poison` description says), acknowledges it for the group that
met it, and leaves it out, so one garbage entry never stops a reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from redis.exceptions import ResponseError

from mergebot.store.connection import RedisClient, same_slot_groups
from mergebot.store.poison import record_poison

T = TypeVar("T")

# A stream entry as redis-py returns it (decoded): (entry id, fields).
Row = tuple[str, dict[str, str]]


def rows_of(reply: object) -> list[Row]:
    """redis-py types stream replies loosely; with decode_responses they are lists of str rows."""
    return cast(list[Row], reply or [])


@dataclass(frozen=True)
class Unreadable:
    """What a parser returns for an entry it cannot read: why."""

    why: str


@dataclass(frozen=True)
class Poison:
    """Where the unreadable entries of one stream are recorded, and how they are logged."""

    record_key: str
    label: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingSummary:
    count: int
    oldest: str | None
    consumers: dict[str, int]


async def readable(
    redis: RedisClient,
    stream: str,
    rows: Iterable[Row],
    parse: Callable[[str, dict[str, str]], T | Unreadable],
    poison: Poison,
    *,
    group: str | None,
) -> list[T]:
    """The parsed entries of `rows`; the unreadable ones are recorded as poison entries (and,
    when `group` read them, acknowledged for it). Rows without fields — entries deleted or trimmed
    while pending — are left out."""
    parsed: list[T] = []
    for entry_id, fields in rows:
        if not fields:
            continue
        found = parse(entry_id, fields)
        if isinstance(found, Unreadable):
            await record_poison(
                redis,
                record_key=poison.record_key,
                stream=stream,
                entry_id=entry_id,
                fields=fields,
                why=found.why,
                group=group,
                label=poison.label,
                context=poison.context,
            )
        else:
            parsed.append(found)
    return parsed


async def read_after(
    redis: RedisClient, stream: str, after: str, *, count: int, block_ms: int | None
) -> list[Row]:
    """Entries of `stream` after entry `after`, without a group (a watcher that keeps its own
    place), waiting up to `block_ms` for one."""
    reply = await redis.xread({stream: after}, count=count, block=block_ms)
    found = cast(list[tuple[str, object]], reply or [])
    return [row for _stream, rows in found for row in rows_of(rows)]


@dataclass(frozen=True)
class StreamGroup:
    """One consumer group, read by consumers named per call (a process may run several)."""

    redis: RedisClient
    group: str

    async def ensure(self, stream: str, *, start: str = "0") -> None:
        """Create the group on `stream` (and the stream) unless it exists."""
        try:
            await self.redis.xgroup_create(stream, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(
        self,
        consumer: str,
        streams: Sequence[str],
        *,
        pending: bool = False,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[tuple[str, list[Row]]]:
        """New entries of `streams` for `consumer` (per stream), or (pending=True) the ones it was
        given and has not acknowledged. Entries deleted while pending are left out.

        One XREADGROUP names only streams of one hash slot on a Redis Cluster, so there the
        streams are read per slot, side by side: first without waiting (a busy stream is not held
        back by idle ones), then, when nothing was there, each read waits up to `block_ms`. No
        read is cancelled early: a cancelled XREADGROUP may already have given entries to this
        consumer, which would then wait for a reclaim."""
        start = "0" if pending else ">"
        groups = same_slot_groups(self.redis, streams)
        if len(groups) == 1:
            return await self._read(consumer, groups[0], start, count, block_ms)
        found = await self._read_each(consumer, groups, start, count, None)
        if found or block_ms is None:
            return found
        return await self._read_each(consumer, groups, start, count, block_ms)

    async def _read_each(
        self,
        consumer: str,
        groups: Sequence[Sequence[str]],
        start: str,
        count: int,
        block_ms: int | None,
    ) -> list[tuple[str, list[Row]]]:
        replies = await asyncio.gather(
            *(self._read(consumer, group, start, count, block_ms) for group in groups)
        )
        return [found for reply in replies for found in reply]

    async def _read(
        self, consumer: str, streams: Sequence[str], start: str, count: int, block_ms: int | None
    ) -> list[tuple[str, list[Row]]]:
        reply = await self.redis.xreadgroup(
            self.group, consumer, dict.fromkeys(streams, start), count=count, block=block_ms
        )
        return [
            (stream, [row for row in rows if row[1]])
            for stream, rows in cast(list[tuple[str, list[Row]]], reply or [])
        ]

    async def read_one(
        self,
        consumer: str,
        stream: str,
        *,
        pending: bool = False,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[Row]:
        """`read` of a single stream."""
        found = await self.read(consumer, [stream], pending=pending, count=count, block_ms=block_ms)
        return [row for _stream, rows in found for row in rows]

    async def reclaim(
        self,
        consumer: str,
        stream: str,
        *,
        min_idle_ms: int,
        count: int = 100,
        every: bool = False,
    ) -> list[Row]:
        """Take over entries pending for at least `min_idle_ms` (another consumer died, or an
        earlier try failed): one page of `count`, or with `every` all of them."""
        claimed: list[Row] = []
        start = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                stream, self.group, consumer, min_idle_time=min_idle_ms, start_id=start, count=count
            )
            # Redis 6.2 answers [next, entries]; 7.x adds the deleted ids: never unpack a fixed
            # count.
            next_start, rows = cast(str, reply[0]), rows_of(reply[1])
            claimed += [row for row in rows if row[1]]
            if not every or next_start in ("0-0", start) or not rows:
                return claimed
            start = next_start

    async def ack(self, stream: str, *entry_ids: str, delete: bool = False) -> int:
        """Acknowledge entries whose effect is stored (and with `delete`, drop them from the
        stream: for streams whose entries are work items, not history)."""
        if not entry_ids:
            return 0
        acked = int(await self.redis.xack(stream, self.group, *entry_ids))
        if delete:
            await self.redis.xdel(stream, *entry_ids)
        return acked

    async def pending(self, stream: str) -> PendingSummary:
        info: dict[str, Any] = await self.redis.xpending(stream, self.group)
        consumers = {str(c["name"]): int(c["pending"]) for c in info.get("consumers") or []}
        return PendingSummary(int(info["pending"]), info.get("min"), consumers)

    async def pending_count(self, stream: str) -> int:
        """Entries given out and not acknowledged; 0 when the group does not exist yet."""
        try:
            return (await self.pending(stream)).count
        except ResponseError:
            return 0
