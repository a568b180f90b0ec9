"""A client that sends the commands asked for in one turn of the event loop as one pipeline.

A reader that fans out a dozen small reads at once (the status of a repo: its lease, train,
hold, counters, refusals…) pays for each command mostly around Redis: a connection taken from
the pool, one `send` system call (which wakes Redis; expensive on a VM), one wake-up for the
answer. `BatchingClient` queues each command and, once the tasks of the current event-loop
iteration and the tasks they start have all asked, sends what was queued as one pipeline (not
a MULTI: as independent as separate calls) on one connection, then answers each caller with
its own reply or error. A script is called through EVALSHA like any command, and a script
Redis does not know fails only its own caller, whose `Script` loads it and asks again (in the
next batch).

Reads that depend on one another still take a round trip each, in later batches. Blocking
commands (XREADGROUP with BLOCK) and MULTI transactions do not belong here: a blocking command
would hold up the batch it is in, and a pipeline the client builds is not this one. A Redis
Cluster client is not wrapped: its pipelines split by node, and it is used as it is.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class BatchingClient(aioredis.Redis):
    """Shares the connection pool (and so the settings) of the client it is made from."""

    def __init__(self, client: aioredis.Redis) -> None:
        super().__init__(connection_pool=client.connection_pool)
        self._pending: list[Pending] = []
        self._sending: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, options, answer))
        if len(self._pending) == 1:
            # A callback scheduled now runs after every task already due in this iteration; the
            # one it schedules, after the tasks those start in turn (a gather inside a gather),
            # so the reads of both go in the same batch.
            loop.call_soon(loop.call_soon, self._flush)
        return await answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Pending]) -> None:
        pipe = self.pipeline(transaction=False)
        for args, options, _answer in batch:
            pipe.execute_command(*args, **options)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # the call itself failed: every caller gets its error
            for *_call, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:  # cancelled (the loop is closing): so are its callers
            for *_call, answer in batch:
                answer.cancel()
            raise
        for (*_call, answer), reply in zip(batch, replies, strict=True):
            if answer.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(reply, Exception):
                answer.set_exception(reply)
            else:
                answer.set_result(reply)
