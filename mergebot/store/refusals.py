"""A capped record of refused inputs, so a refusal stays visible after the log line scrolled away.

SPEC §12: the integrator this design grows from dropped rejected events silently and a whole chain
never became ready. Every refusal of an authenticated producer is kept here (newest first, capped)
with a running total; `mergebot status` and the dashboard can show them. Unauthenticated requests
are only logged and counted: letting anyone write here would let anyone push real refusals out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys

DEFAULT_KEEP = 1000


class Refusal(BaseModel):
    """One refused input: where it came from, the answer it got and why (never its secrets)."""

    model_config = ConfigDict(frozen=True)

    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: str
    status: int
    reason: str
    message: str
    event_ids: list[str] = Field(default_factory=list)
    repos: list[str] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class RefusalLog:
    def __init__(self, redis: RedisClient, keys: Keys, *, keep: int = DEFAULT_KEEP) -> None:
        self.redis = redis
        self.keys = keys
        self.keep = keep

    async def record(self, refusal: Refusal) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(self.keys.refusals(), refusal.model_dump_json())
            pipe.ltrim(self.keys.refusals(), 0, self.keep - 1)
            pipe.incr(self.keys.refusal_count())
            await pipe.execute()

    async def recent(self, limit: int = 20) -> list[Refusal]:
        """The newest `limit` refusals, newest first."""
        if limit <= 0:
            return []
        rows = await self.redis.lrange(self.keys.refusals(), 0, limit - 1)
        return [Refusal.model_validate_json(row) for row in rows]

    async def total(self) -> int:
        value = await self.redis.get(self.keys.refusal_count())
        return int(value) if value is not None else 0
