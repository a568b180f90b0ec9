"""The flaky-check record on real Redis: recent counts per check for follow-ups and the
dashboard, totals that only grow for metrics, old entries pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mergebot.store.connection import RedisClient
from mergebot.store.flaky import FlakyLog
from mergebot.store.keys import Keys

REPO = "acme/widgets"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_flakes_are_counted_per_check_over_the_last_seven_days(
    redis: RedisClient, keys: Keys
) -> None:
    log = FlakyLog(redis, keys)
    await log.record(REPO, ["pytest"], "a" * 40, NOW - timedelta(days=9))
    await log.record(REPO, ["pytest", "lint"], "b" * 40, NOW - timedelta(days=2))
    await log.record(REPO, ["pytest", "pytest"], "c" * 40, NOW - timedelta(hours=1))
    assert await log.recent(REPO, now=NOW) == {"pytest": 2, "lint": 1}
    assert await log.totals(REPO) == {"pytest": 3, "lint": 1}
    assert await log.recent("other/repo", now=NOW) == {}


async def test_entries_older_than_thirty_days_are_pruned_but_totals_stay(
    redis: RedisClient, keys: Keys
) -> None:
    log = FlakyLog(redis, keys)
    await log.record(REPO, ["pytest"], "a" * 40, NOW - timedelta(days=40))
    await log.record(REPO, ["pytest"], "b" * 40, NOW)
    assert await redis.zcard(keys.flaky(REPO)) == 1
    assert await log.totals(REPO) == {"pytest": 2}
