"""Reading the queue change streams (`keys.changes(repo)`), for every reader of them.

`QueueStore` writes one entry per status change (`item`, `from`, `to`, `at`, `cause`). The GitHub
reporter and the notifier read them through a consumer group each (`ChangeReader`), the demo
follows one without a group (`follow_changes`); all of them through `mergebot.store.stream`, and
all parse an entry with `mergebot.queue.parse_change`. An entry that does not parse is a poison
entry: recorded in `keys.poison_changes(repo)`, counted by status and acknowledged, so one garbage
entry never stops a reader.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mergebot.queue import Change, ChangeError, parse_change
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.poison import poison_records
from mergebot.store.stream import Poison, Row, StreamGroup, Unreadable, read_after, readable


def _parser(repo: str) -> Callable[[str, dict[str, str]], Change | Unreadable]:
    def parse(entry_id: str, fields: dict[str, str]) -> Change | Unreadable:
        try:
            return parse_change(repo, entry_id, fields)
        except ChangeError as exc:
            return Unreadable(str(exc))

    return parse


def _poison(keys: Keys, repo: str) -> Poison:
    return Poison(keys.poison_changes(repo), "change_stream", {"repo": repo})


async def _readable(
    redis: RedisClient, keys: Keys, repo: str, rows: Sequence[Row], group: str | None
) -> list[Change]:
    stream = keys.changes(repo)
    return await readable(redis, stream, rows, _parser(repo), _poison(keys, repo), group=group)


@dataclass(frozen=True)
class ChangeBatch:
    """What one read took: the readable changes as (repo, change) in stream order, and how many
    entries it took in all (poison entries included: they were consumed too)."""

    changes: list[tuple[str, Change]]
    taken: int


class ChangeReader:
    """One consumer of a consumer group over the change streams of some repos."""

    def __init__(self, redis: RedisClient, keys: Keys, group: str, consumer: str) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.consumer = consumer
        self._group = StreamGroup(redis, group)

    async def ensure(self, repos: Iterable[str]) -> None:
        for repo in repos:
            await self._group.ensure(self.keys.changes(repo))

    async def _batch(self, per_repo: Iterable[tuple[str, list[Row]]]) -> ChangeBatch:
        changes: list[tuple[str, Change]] = []
        taken = 0
        for repo, rows in per_repo:
            taken += len(rows)
            parsed = await _readable(self.redis, self.keys, repo, rows, self.group)
            changes += [(repo, change) for change in parsed]
        return ChangeBatch(changes, taken)

    async def pending(self, repo: str, *, count: int = 100) -> ChangeBatch:
        """The changes of `repo` this consumer was given and has not acknowledged."""
        stream = self.keys.changes(repo)
        rows = await self._group.read_one(self.consumer, stream, pending=True, count=count)
        return await self._batch([(repo, rows)])

    async def reclaim(self, repos: Iterable[str], *, min_idle_ms: int, count: int) -> ChangeBatch:
        """Changes another consumer (or an earlier failed try) left pending long enough."""
        found: list[tuple[str, list[Row]]] = []
        for repo in repos:
            stream = self.keys.changes(repo)
            rows = await self._group.reclaim(
                self.consumer, stream, min_idle_ms=min_idle_ms, count=count
            )
            found.append((repo, rows))
        return await self._batch(found)

    async def read(
        self, repos: Sequence[str], *, count: int, block_ms: int | None = None
    ) -> ChangeBatch:
        """New changes of `repos` (one read over all their streams)."""
        repo_of = {self.keys.changes(repo): repo for repo in repos}
        found = await self._group.read(self.consumer, list(repo_of), count=count, block_ms=block_ms)
        return await self._batch((repo_of[stream], rows) for stream, rows in found)

    async def ack(self, repo: str, change: Change) -> None:
        """Acknowledge a change whose effect is done."""
        await self._group.ack(self.keys.changes(repo), change.entry_id)


async def follow_changes(
    redis: RedisClient, keys: Keys, repo: str, after: str, *, count: int, block_ms: int
) -> tuple[str, list[Change]]:
    """The changes of `repo` after entry `after` (waiting up to `block_ms` for one), without a
    group: (the id to follow from next, the readable changes)."""
    rows = await read_after(redis, keys.changes(repo), after, count=count, block_ms=block_ms)
    last = rows[-1][0] if rows else after
    return last, await _readable(redis, keys, repo, rows, None)


async def poison_changes(redis: RedisClient, keys: Keys, repo: str) -> list[dict[str, Any]]:
    """The recorded unreadable entries of `repo`'s change stream, oldest first."""
    return await poison_records(redis, keys.poison_changes(repo))


async def poison_change_count(redis: RedisClient, keys: Keys, repo: str) -> int:
    return int(await redis.hlen(keys.poison_changes(repo)))
