"""Background services: what `serve` and `worker` run until they are told to stop.

A service is `async (runtime, stop) -> None`. This module is the one place that runs them
(`supervise`) and the one loop that keeps a service's step going through failures with backoff
(`keep_running`); services call it instead of writing their own retry loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from redis.exceptions import RedisError

from mergebot.runtime import Runtime

# A background service runs until `stop` is set; `serve` and `worker` run every one of them.
BackgroundService = Callable[[Runtime, asyncio.Event], Awaitable[None]]
_log = logging.getLogger("mergebot.services")


async def sleep_until_stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less when `stop` is set meanwhile; whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def keep_running(
    stop: asyncio.Event, step: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Run a service's `step` again and again until `stop`. Redis being away is expected (a
    warning, then a retry with backoff up to 30 s); any other failure is a bug that must not end
    the service silently (logged with its traceback, then retried up to every minute)."""
    failures = 0
    while not stop.is_set():
        try:
            await step()
        except (RedisError, OSError) as exc:
            failures += 1
            delay = min(30.0, 0.5 * 2 ** min(failures, 6))
            _log.warning("%s_redis_error error=%s retry_in=%.1fs", name, type(exc).__name__, delay)
        except Exception:
            failures += 1
            delay = min(60.0, 1.0 * 2 ** min(failures, 6))
            _log.exception("%s_step_failed retry_in=%.1fs", name, delay)
        else:
            failures = 0
            continue
        await sleep_until_stopped(stop, delay)


async def supervise(
    runtime: Runtime, services: Sequence[BackgroundService], stop: asyncio.Event
) -> None:
    """Start `services` in the order given, wait for `stop`, then cancel what still runs and wait
    for every one of them to end (a service's own `finally` blocks run before this returns)."""
    tasks = [asyncio.ensure_future(service(runtime, stop)) for service in services]
    try:
        await stop.wait()
        _log.info("shutdown_requested")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
