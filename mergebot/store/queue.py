"""The durable queue of one (repo, base) in Redis (SPEC §5).

Layout (all under the repo's hash tag, so one script touches them on Redis Cluster too):
- `keys.items(repo, base)`: hash item id -> item JSON (status, times, the whole history);
- `keys.queue(repo, base)`: sorted set of the ids of items that are not final, scored by
  `ready_at`; final items leave it but stay in the hash as the record. The queue's order
  (priority, then ready_at: `mergebot.queue.queue_order`) is applied when the items are read,
  since a score cannot hold both exactly;
- `keys.changes(repo)`: stream with one entry per status change (`item`, `from`, `to`, `at`,
  `cause`), appended in the same script as the change, for the notifier and the dashboard; and
  one, `from` and `to` the same status, when the integrator records something its readers show
  without a status change (`annotate`: a rebuilt car's new place in the train).

Every write is one Lua compare-and-set: the script stores the new item only if the stored JSON is
still the one the Python side read (else the caller re-reads and decides again). That keeps the
transition rules in one place (`mergebot.queue`) while making each change atomic with its history
entry and its change-stream entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from pydantic import TypeAdapter

from mergebot.ids import ItemId
from mergebot.queue import (
    FINAL,
    IntegrationRecord,
    InvalidTransitionError,
    QueueItem,
    Status,
    StatusChange,
    enqueued,
    moved,
    queue_order,
    rescheduled,
)
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.packed import HashReader

_ITEMS: TypeAdapter[list[QueueItem]] = TypeAdapter(list[QueueItem])

# KEYS: items hash, active zset, changes stream, version counter.
# ARGV: id, expected JSON ('' = must be absent), new JSON, score, active (1/0), from, to, at, cause.
_WRITE_LUA = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[4])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'item', ARGV[3], 'from', ARGV[6],
             'to', ARGV[7], 'at', ARGV[8], 'cause', ARGV[9])
end
return 1
"""

# The write script's work for items that must not exist yet, many at once (all of one
# (repo, base): the same four keys). KEYS as above; ARGV per item: id, new JSON, score, at, cause.
# Answers one character per item: 1 when written, 0 when it exists (the caller decides those
# one by one); a string, not an array, whose every element redis-py would parse on its own.
_ENQUEUE_NEW_LUA = """
local out = {}
local written = 0
for i = 1, #ARGV, 5 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    out[#out + 1] = '0'
  else
    redis.call('HSET', KEYS[1], id, ARGV[i + 1])
    redis.call('ZADD', KEYS[2], ARGV[i + 2], id)
    redis.call('XADD', KEYS[3], '*', 'id', id, 'item', ARGV[i + 1], 'from', '',
               'to', 'queued', 'at', ARGV[i + 3], 'cause', ARGV[i + 4])
    written = written + 1
    out[#out + 1] = '1'
  end
end
if written > 0 then redis.call('INCRBY', KEYS[4], written) end
return table.concat(out)
"""
# Items per call of the script above: Redis runs a script alone, so a long one holds everyone up.
_ENQUEUE_CHUNK = 500

_MAX_ATTEMPTS = 20


class ItemNotFoundError(KeyError):
    def __init__(self, repo: str, base: str, item_id: str) -> None:
        super().__init__(f"no queue item {item_id!r} in {repo} ({base})")


class UnexpectedStatusError(InvalidTransitionError):
    """The item is not in the status the caller expected (someone else moved it first)."""

    def __init__(self, current: Status, expected: Status, target: Status) -> None:
        ValueError.__init__(
            self,
            f"queue item is {current}, not {expected}: refusing to move it to {target}",
        )
        self.current = current
        self.target = target
        self.expected = expected


class QueueConflictError(RuntimeError):
    """Concurrent writers kept changing the item; nothing was written by this call."""


def _score(when: datetime) -> float:
    return when.timestamp() * 1000


def _now() -> datetime:
    return datetime.now(UTC)


class QueueStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._write = redis.register_script(_WRITE_LUA)
        self._enqueue_new = redis.register_script(_ENQUEUE_NEW_LUA)

    # -- reading -------------------------------------------------------------------------------
    async def _raw(self, repo: str, base: str, item_id: ItemId) -> str | None:
        return cast(str | None, await self.redis.hget(self.keys.items(repo, base), item_id))

    async def get(self, repo: str, base: str, item_id: ItemId) -> QueueItem | None:
        raw = await self._raw(repo, base, item_id)
        return QueueItem.model_validate_json(raw) if raw is not None else None

    async def get_many(self, repo: str, base: str, item_ids: list[str]) -> dict[str, QueueItem]:
        if not item_ids:
            return {}
        raw = cast(list[str | None], await self.redis.hmget(self.keys.items(repo, base), item_ids))
        return {
            i: QueueItem.model_validate_json(text)
            for i, text in zip(item_ids, raw, strict=True)
            if text is not None
        }

    async def items(self, repo: str, base: str) -> list[QueueItem]:
        """Every item ever queued for (repo, base), final ones included, in queue order. Read as
        one string and parsed in one call: a big repo's history is thousands of items."""
        (raw,) = await HashReader(self.redis).read([self.keys.items(repo, base)])
        found = _ITEMS.validate_json("[" + ",".join(raw.values()) + "]") if raw else []
        found.sort(key=queue_order)
        return found

    async def active(self, repo: str, base: str) -> list[QueueItem]:
        """Items not final yet (queued, in_progress, blocked), in queue order (priority, then
        ready_at)."""
        ids = cast(list[str], await self.redis.zrange(self.keys.queue(repo, base), 0, -1))
        if not ids:
            return []
        raw = cast(list[str | None], await self.redis.hmget(self.keys.items(repo, base), ids))
        found = [QueueItem.model_validate_json(text) for text in raw if text is not None]
        found.sort(key=queue_order)
        return found

    async def by_status(self, repo: str, base: str, status: Status) -> list[QueueItem]:
        source = self.items if status in FINAL else self.active
        return [item for item in await source(repo, base) if item.status == status]

    async def version(self, repo: str, base: str) -> str:
        """A token that changes with every write to the queue of (repo, base): readers that
        build views of it rebuild them only when it moved."""
        return str(await self.redis.get(self.keys.queue_version(repo, base)) or 0)

    async def next_queued(self, repo: str, base: str) -> QueueItem | None:
        """The first `queued` item in queue order: what the integrator works on next. An item
        already in progress is never overtaken by a higher priority: only queued ones compete."""
        for item in await self.active(repo, base):
            if item.status == Status.QUEUED:
                return item
        return None

    # -- writing -------------------------------------------------------------------------------
    async def _cas(
        self,
        item: QueueItem,
        expected_raw: str | None,
        *,
        from_status: str,
        change: StatusChange | None,
    ) -> bool:
        keys, args = self._write_call(item, expected_raw, from_status, change)
        ok = await self._write(keys=keys, args=args)
        return bool(ok)

    def _write_call(
        self,
        item: QueueItem,
        expected_raw: str | None,
        from_status: str,
        change: StatusChange | None,
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of the write script."""
        new_json = item.model_dump_json()
        return (
            [
                self.keys.items(item.repo, item.base),
                self.keys.queue(item.repo, item.base),
                self.keys.changes(item.repo),
                self.keys.queue_version(item.repo, item.base),
            ],
            [
                item.id,
                expected_raw or "",
                new_json,
                repr(_score(item.ready_at)),
                "0" if item.status in FINAL else "1",
                from_status,
                change.status.value if change else "",
                change.at.isoformat() if change else "",
                change.cause if change else "",
            ],
        )

    async def enqueue(self, item: QueueItem, *, cause: str = "became ready") -> bool:
        """Queue a candidate; False when (slug, branch, sha) is already there.

        An item that ended `cancelled` or `superseded` is queued again as a new entry (its history
        is kept and continues); any other existing item makes this a no-op.
        """
        for _ in range(_MAX_ATTEMPTS):
            raw = await self._raw(item.repo, item.base, item.id)
            existing = None if raw is None else QueueItem.model_validate_json(raw)
            found = enqueued(item, existing, cause)
            if found is None:
                return False
            new, change = found
            if await self._cas(new, raw, from_status="", change=change):
                return True
        raise QueueConflictError(f"could not enqueue {item.id}: too many concurrent changes")

    async def enqueue_many(self, entries: Sequence[tuple[QueueItem, str]]) -> list[bool]:
        """Queue several candidates (item, cause) in few round trips, in order: the items of one
        (repo, base) whose id does not exist yet are written by one script call per chunk, with
        what the write script would write for each; one that exists goes through `enqueue`
        afterwards (queued again, or a no-op). What `enqueue` would answer, per item."""
        groups: dict[tuple[str, str], list[int]] = {}
        for index, (item, _cause) in enumerate(entries):
            if item.status != Status.QUEUED:
                raise ValueError(f"a new queue item must be queued, not {item.status}")
            groups.setdefault((item.repo, item.base), []).append(index)
        written = [False] * len(entries)
        for (repo, base), indexes in groups.items():
            keys = [
                self.keys.items(repo, base), self.keys.queue(repo, base),
                self.keys.changes(repo), self.keys.queue_version(repo, base),
            ]  # fmt: skip
            for start in range(0, len(indexes), _ENQUEUE_CHUNK):
                chunk = indexes[start : start + _ENQUEUE_CHUNK]
                args: list[str] = []
                for index in chunk:
                    item, cause = entries[index]
                    new, change = cast(tuple[QueueItem, StatusChange], enqueued(item, None, cause))
                    args += [
                        item.id, new.model_dump_json(), repr(_score(item.ready_at)),
                        change.at.isoformat(), change.cause,
                    ]  # fmt: skip
                replies = str(await self._enqueue_new(keys=keys, args=args))
                for index, reply in zip(chunk, replies, strict=True):
                    written[index] = reply == "1"
        done = []
        for (item, cause), new_item in zip(entries, written, strict=True):
            done.append(new_item or await self.enqueue(item, cause=cause))
        return done

    async def transition(
        self,
        repo: str,
        base: str,
        item_id: ItemId,
        to: Status,
        *,
        cause: str,
        at: datetime | None = None,
        expect: Status | None = None,
        followup_id: str | None = None,
        reasons: list[str] | None = None,
        integration: IntegrationRecord | None = None,
    ) -> QueueItem:
        """Move an item to `to`, atomically with its history entry and change-stream entry.

        Refuses an illegal move with InvalidTransitionError (UnexpectedStatusError when `expect`
        is given and the item is in another status). `reasons` replaces the item's reasons;
        `integration` is merged into what the integrator recorded before.
        """
        when = (at or _now()).astimezone(UTC)
        for _ in range(_MAX_ATTEMPTS):
            raw = await self._raw(repo, base, item_id)
            if raw is None:
                raise ItemNotFoundError(repo, base, item_id)
            item = QueueItem.model_validate_json(raw)
            if expect is not None and item.status != expect:
                raise UnexpectedStatusError(item.status, expect, to)
            new, change = moved(
                item, to, at=when, cause=cause, followup_id=followup_id, reasons=reasons,
                integration=integration,
            )  # fmt: skip
            if await self._cas(new, raw, from_status=item.status.value, change=change):
                return new
        raise QueueConflictError(f"could not move {item_id} to {to}: too many concurrent changes")

    async def annotate(
        self,
        repo: str,
        base: str,
        item_id: ItemId,
        integration: IntegrationRecord,
        *,
        expect: Status,
        cause: str,
        at: datetime | None = None,
    ) -> QueueItem | None:
        """Merge `integration` into what the integrator recorded on an item in status `expect`,
        without moving it: its change-stream entry goes from `expect` to `expect`, so the
        readers that show the item (the GitHub reporter, the notifier) show it again. Not a
        status change, so not in the item's history. None when the item is gone or in another
        status (someone moved it first: theirs is the newer truth)."""
        when = (at or _now()).astimezone(UTC)
        for _ in range(_MAX_ATTEMPTS):
            raw = await self._raw(repo, base, item_id)
            if raw is None:
                return None
            item = QueueItem.model_validate_json(raw)
            if item.status != expect:
                return None
            new = item.model_copy(update={"integration": item.integration.updated(integration)})
            change = StatusChange(status=expect, at=when, cause=cause)
            if await self._cas(new, raw, from_status=expect.value, change=change):
                return new
        raise QueueConflictError(f"could not annotate {item_id}: too many concurrent changes")

    async def reschedule(
        self, repo: str, base: str, item_id: ItemId, ready_at: datetime, priority: int | None = None
    ) -> bool:
        """Give an item a corrected `ready_at` (a `finalize_ready` that arrived out of order)
        and, when given, its slug's current `priority`; a waiting item moves to its place in
        the queue order, a finished one stays out of it.

        Not a status change, so nothing goes to the change stream, and any status is corrected:
        an item's `ready_at` is a fact of its candidate, not of who holds or finished it (a
        concurrent transition re-reads the item, so neither write is lost). False when there
        is no such item.
        """
        for _ in range(_MAX_ATTEMPTS):
            raw = await self._raw(repo, base, item_id)
            if raw is None:
                return False
            new = rescheduled(QueueItem.model_validate_json(raw), ready_at, priority)
            if new is None:
                return True
            if await self._cas(new, raw, from_status="", change=None):
                return True
        raise QueueConflictError(f"could not reschedule {item_id}: too many concurrent changes")
