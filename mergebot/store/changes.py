"""Reading the queue change streams (`keys.changes(repo)`), for every reader of them.

`QueueStore` writes one entry per status change (`item`, `from`, `to`, `at`, `cause`). Readers
(the GitHub reporter, the notifier, the demo's watcher) parse an entry with
`mergebot.queue.parse_change`; an
entry that does not parse is a poison entry, handed to `change_poisoned`, which records, counts
and acknowledges it through the same mechanism as the event log's (`store/poison.py`), so one
garbage entry never stops a reader.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from mergebot.queue import ChangeError
from mergebot.store.keys import Keys
from mergebot.store.poison import poison_records, record_poison


async def change_poisoned(
    redis: aioredis.Redis,
    keys: Keys,
    repo: str,
    entry_id: str,
    *,
    fields: dict[str, str],
    error: ChangeError,
    group: str | None,
) -> None:
    """Record (once) and, for `group`, acknowledge an unreadable change entry."""
    await record_poison(
        redis,
        record_key=keys.poison_changes(repo),
        stream=keys.changes(repo),
        entry_id=entry_id,
        fields=fields,
        why=str(error),
        group=group,
        label="change_stream",
        context={"repo": repo},
    )


async def poison_changes(redis: aioredis.Redis, keys: Keys, repo: str) -> list[dict[str, Any]]:
    """The recorded unreadable entries of `repo`'s change stream, oldest first."""
    return await poison_records(redis, keys.poison_changes(repo))


async def poison_change_count(redis: aioredis.Redis, keys: Keys, repo: str) -> int:
    return int(await redis.hlen(keys.poison_changes(repo)))
