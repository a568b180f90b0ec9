"""Background services keep running through Redis outages and through their own bugs."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from mergebot.services import keep_running, sleep_until_stopped


async def test_a_redis_outage_is_a_warning_and_the_step_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RedisConnectionError("Connection refused")
        stop.set()

    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(keep_running(stop, step, name="demo"), timeout=10)
    assert calls == [0, 1]
    assert "demo_redis_error error=ConnectionError retry_in=1.0s" in caplog.text


@pytest.mark.allow_error_logs
async def test_a_bug_in_a_step_is_logged_loudly_and_does_not_end_the_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise KeyError("oops")
        stop.set()

    await asyncio.wait_for(keep_running(stop, step, name="demo"), timeout=10)
    assert calls == [0, 1]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "demo_step_failed retry_in=2.0s"
    assert record.exc_info is not None


async def test_sleep_until_stopped_ends_early_on_stop() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    assert await asyncio.wait_for(sleep_until_stopped(stop, 600), timeout=5) is True
    assert await sleep_until_stopped(asyncio.Event(), 0) is False
