"""Calls of one Lua script made by concurrent tasks, written to Redis together.

At ingest rates most of a request's cost on the Redis side of the process is not the script but
the call around it: taking a connection from the pool, one `send` system call (which wakes Redis),
one read of the answer and the event-loop wake-up it takes. Requests handled in the same
event-loop iteration each call the append script; `Coalescer` sends the calls made in one
iteration as one pipeline (one connection, one write, one read of all the answers), so these
costs are paid once per iteration instead of once per request.

Nothing else changes: each call is its own EVALSHA, run by Redis one after another in the order
they were made, atomic on its own, answered to its own caller (an error in one call is raised to
that caller only; a connection error to every caller of the batch, which then cannot know
whether its call ran — as with a single call that fails). A script Redis does not know (after a
restart or SCRIPT FLUSH) is loaded and the calls that met NOSCRIPT are sent again. A client of
a Redis Cluster is not given one (its pipelines take no EVALSHA): the event log then calls the
script once per append.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

Call = tuple[list[str], list[str], "asyncio.Future[Any]"]


class Coalescer:
    """EVALSHA of one script for many callers, batched per event-loop iteration."""

    def __init__(self, redis: aioredis.Redis, script: str) -> None:
        self.redis = redis
        self.script = redis.register_script(script)
        self._pending: list[Call] = []

    async def __call__(self, keys: list[str], args: list[str]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._pending:
            # Runs once the tasks woken in this iteration have all made their calls.
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((keys, args, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(_retrieve)

    async def _send(self, batch: list[Call]) -> None:
        try:
            replies = await self._evalsha_all(batch)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                self.script.sha = await self.redis.script_load(self.script.script)
                again = await self._evalsha_all([batch[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except BaseException as exc:  # the connection failed: whether each call ran is unknown
            for _keys, _args, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            raise
        for (_keys, _args, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller was cancelled; the call ran all the same
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _evalsha_all(self, batch: list[Call]) -> list[Any]:
        sha = self.script.sha
        if len(batch) == 1:
            keys, args, _future = batch[0]
            try:
                return [await self.redis.evalsha(sha, len(keys), *keys, *args)]
            except NoScriptError as exc:
                return [exc]
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _future in batch:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))


def _retrieve(task: asyncio.Task[None]) -> None:
    """The exception of a failed batch was given to its callers; do not log it as unretrieved."""
    if not task.cancelled():
        task.exception()
