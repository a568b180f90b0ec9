"""Appends of concurrent requests, written to Redis as one script call.

At ingest rates most of a request's cost on the Redis side of the process is not the script but
the call around it: taking a connection from the pool, packing the command, one `send` system
call (which wakes Redis), parsing the answer and the event-loop wake-up it takes. Requests
ask for appends; `Coalescer` keeps one call of the append script out at a time and sends the
appends asked for meanwhile together in the next call (a group commit), whose groups are run one
after another as separate calls would be (see `_APPEND_LUA` in mergebot.store.eventlog). An idle
server sends at once (after the tasks of the current event-loop iteration have asked); under load
a call carries what arrived during the one before it, so the fixed cost of a call is shared by
more requests the busier the server is. A pipeline of one call per request would still pay the
packing and parsing of a whole command per request.

Each group stays all-or-nothing on its own and is answered to its own caller (a conflict is a
value in the group's answer, so it fails that caller only). An error of the call itself (a lost
connection, a Redis out of memory) goes to every caller of the batch, which cannot know whether
its group ran, as with a call of its own that fails. A script Redis does not know (after a
restart or SCRIPT FLUSH) is loaded again and the call repeated (redis-py's `Script` does this).
A client of a Redis Cluster is not given one: a script's keys must share a slot, so the event log
then calls the script once per group.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

# One group of the append script: its partition's stream key, its id-hash key, and its events'
# arguments (two per event: see `_APPEND_LUA` in mergebot.store.eventlog).
Group = tuple[str, str, list[str]]
Call = tuple[Group, "asyncio.Future[str]"]


def group_call(groups: list[Group]) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of one script call running `groups` in order (each partition's keys once)."""
    keys: list[str] = []
    index: dict[str, int] = {}
    argv: list[str] = []
    for stream, ids, fields in groups:
        at = index.get(stream)
        if at is None:
            at = index[stream] = len(keys) + 1
            keys += [stream, ids]
        argv += [f"{at} {len(fields) // 2}", *fields]
    return keys, argv


class Coalescer:
    """The append script's groups of many callers, sent as one call at a time: the groups asked
    for while a call is out go together in the next one (a group commit), so under load a call
    carries what arrived during the one before it, and an idle server sends at once."""

    def __init__(self, redis: aioredis.Redis, script: str) -> None:
        self.script = redis.register_script(script)
        self._pending: list[Call] = []
        self._busy = False  # a flush is scheduled or a call is out

    async def __call__(self, group: Group) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((group, future))
        if not self._busy:
            # Runs once the tasks woken in this iteration have all asked.
            self._busy = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        _retrieve(task)
        if self._pending:
            self._flush()
        else:
            self._busy = False

    async def _send(self, batch: list[Call]) -> None:
        keys, argv = group_call([group for group, _future in batch])
        try:
            replies: list[Any] = await self.script(keys=keys, args=argv)
        except BaseException as exc:  # the call failed: whether each group ran is unknown
            for _group, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            raise
        for (_group, future), reply in zip(batch, replies, strict=True):
            if not future.done():  # else its caller was cancelled; the group ran all the same
                future.set_result(reply)


def _retrieve(task: asyncio.Task[None]) -> None:
    """The exception of a failed batch was given to its callers; do not log it as unretrieved."""
    if not task.cancelled():
        task.exception()
