"""Waiting on a condition with a deadline: the one way tests wait for asynchronous effects.

A fixed sleep either wastes time or flakes under load; polling a condition that a user would
observe, with a deadline that fails loudly, does neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(
    check: Callable[[], Awaitable[bool] | bool],
    what: str = "condition",
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
) -> None:
    """Return once `check` holds (sync or async); fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
