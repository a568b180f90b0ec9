"""Poison entries of a Redis stream read by consumers: one mechanism for every stream.

An entry a consumer cannot read (written by hand, by a broken producer, or by an older layout)
would stop that consumer at the same entry for ever if it were left to raise. Instead it is
logged at WARNING with its id, recorded with its raw fields in a hash (stream entry id -> JSON,
counted by `mergebot status`), acknowledged for the consumer group that met it so the group moves
on, and never deleted from the stream. The event log (`keys.poison_events(partition)`) and the
queue change streams (`keys.poison_changes(repo)`) both use it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, cast

from mergebot.store.connection import RedisClient

log = logging.getLogger("mergebot.store.poison")

_FIELD_CHARS = 10_000  # of each raw field kept in the record


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (`"12-3"` → `(12, 3)`)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def record_poison(
    redis: RedisClient,
    *,
    record_key: str,
    stream: str,
    entry_id: str,
    fields: dict[str, str],
    why: str,
    group: str | None,
    label: str,
    context: dict[str, Any],
) -> None:
    """Record the unreadable entry `entry_id` of `stream` in `record_key` (once), acknowledge it
    for `group` (when a group read it) and log `<label>_poison_entry` with `context`."""
    record = {
        "entry_id": entry_id,
        **context,
        "error": why,
        "fields": {str(k): str(v)[:_FIELD_CHARS] for k, v in fields.items()},
        "found_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    new = await redis.hsetnx(record_key, entry_id, json.dumps(record))
    if group is not None:
        # Recorded first, then acknowledged: the group moves on, the entry is not lost.
        await redis.xack(stream, group, entry_id)
    if new or group is not None:
        where = " ".join(f"{k}={v}" for k, v in context.items())
        log.warning(
            "%s_poison_entry %s entry=%s group=%s error=%s",
            label, where, entry_id, group or "-", why,
        )  # fmt: skip


async def poison_records(redis: RedisClient, record_key: str) -> list[dict[str, Any]]:
    """The records of `record_key`, oldest first (by stream entry id)."""
    raw = cast(dict[str, str], await redis.hgetall(record_key))
    return [json.loads(v) for _, v in sorted(raw.items(), key=lambda kv: stream_id_key(kv[0]))]
