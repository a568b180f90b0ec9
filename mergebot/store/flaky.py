"""Flaky checks: a check that failed and then passed on the same commit (SPEC §13).

Recorded by the integrator when a re-run (`checks.retry_failed`) passes a check that had failed on
that very commit; never inferred from anything else, so a flake is only ever counted next to a
real green run. Two keys per repo: a sorted set of recent flakes (for "N times in the last 7
days" in follow-ups and on the dashboard; pruned past 30 days) and a hash of totals that only grow
(what a metrics collector exposes as a counter, `mergebot_checks_flaky_total{repo,check}`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import cast

from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys

RECENT_DAYS = 7
KEEP_DAYS = 30
_SEP = "\x1f"


class FlakyLog:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def record(
        self, repo: str, checks: Iterable[str], sha: str, at: datetime | None = None
    ) -> None:
        """`checks` failed and then passed on `sha` (once each, however many re-runs it took)."""
        names = sorted(set(checks))
        if not names:
            return
        when = at or datetime.now(UTC)
        stamp = when.timestamp()
        async with self.redis.pipeline(transaction=True) as pipe:
            for name in names:
                pipe.zadd(self.keys.flaky(repo), {_SEP.join((name, sha, when.isoformat())): stamp})
                pipe.hincrby(self.keys.flaky_counts(repo), name, 1)
            cutoff = (when - timedelta(days=KEEP_DAYS)).timestamp()
            pipe.zremrangebyscore(self.keys.flaky(repo), "-inf", f"({cutoff}")
            await pipe.execute()

    async def recent(
        self, repo: str, days: int = RECENT_DAYS, now: datetime | None = None
    ) -> dict[str, int]:
        """Check name -> flakes in the last `days` days."""
        since = ((now or datetime.now(UTC)) - timedelta(days=days)).timestamp()
        members = cast(
            list[str], await self.redis.zrangebyscore(self.keys.flaky(repo), since, "+inf")
        )
        return dict(Counter(member.split(_SEP, 1)[0] for member in members))

    async def totals(self, repo: str) -> dict[str, int]:
        """Check name -> flakes ever recorded (the metrics counter)."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.flaky_counts(repo)))
        return {name: int(count) for name, count in raw.items()}
