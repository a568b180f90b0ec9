"""Review rounds: the n-th approval of a reviewer on a slug gets `review_round` n.

GitHub payloads do not say how many times a reviewer approved before, and reading the whole event
log on a webhook request would be slow, so a small per-repo hash counts approvals by their own id
(a review id, or the comment id of a `/mergebot merge`). Assigning is one Lua script: an approval
id seen before gets its earlier round back, so a redelivered webhook translates to the very same
event and the log's idempotency holds. If an append fails after a round was assigned, the retry
reuses it; an approval that is never retried leaves a gap in the numbering, nothing worse.
"""

from __future__ import annotations

from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys

_ASSIGN_LUA = """
local seen = redis.call('HGET', KEYS[1], ARGV[1])
if seen then return tonumber(seen) end
local round = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HSET', KEYS[1], ARGV[1], round)
return round
"""


class ReviewRounds:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.keys = keys
        self._assign = redis.register_script(_ASSIGN_LUA)

    async def round_for(self, repo: str, slug: str, reviewer: str, approval_id: str) -> int:
        """The round of this approval: 1 + the reviewer's approvals on `slug` before it."""
        counter = f"{slug} {reviewer.lower()}"
        reply = await self._assign(
            keys=[self.keys.review_rounds(repo)], args=[f"{counter} {approval_id}", counter]
        )
        return int(reply)
