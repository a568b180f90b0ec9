"""Waiting on a condition with a deadline: the one way tests wait for asynchronous effects.

A fixed sleep either wastes time or flakes under load; polling a condition that a user would
observe, with a deadline that fails loudly, does neither.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
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


def until_sync(
    check: Callable[[], bool],
    what: str = "condition",
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    context: Callable[[], str] | None = None,
) -> None:
    """`until` for tests that drive real processes from synchronous code: return once `check`
    holds; fail naming `what` (and `context()`, e.g. a log tail) after `timeout` seconds.
    `check` may raise AssertionError itself to fail early (a process that exited)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            detail = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


def answers_healthz(url: str) -> bool:
    """Whether the server at `url` answers `/healthz` with 200 right now."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait_healthy(
    url: str,
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    timeout: float = 30.0,
    *,
    context: Callable[[], str] | None = None,
) -> None:
    """Until the started server answers `/healthz`; fail at once if its process exits first."""

    def healthy() -> bool:
        if process.poll() is not None:
            detail = f": {context()}" if context is not None else ""
            raise AssertionError(f"mergebot serve exited early with {process.returncode}{detail}")
        return answers_healthz(url)

    until_sync(healthy, f"{url}/healthz to answer", timeout=timeout, context=context)
