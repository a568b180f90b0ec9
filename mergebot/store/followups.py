"""Follow-ups in Redis: one hash per repo (id -> JSON) and the newest follow-up of each slug.

Creating a follow-up is idempotent (a redelivered `integration_blocked` finds it and changes
nothing, so a claim is never reset), and links it to the slug's previous follow-up in the same
script that records it as the newest. Claims and resolutions are compare-and-set on the stored
JSON, so two people claiming at once cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import cast

from mergebot.followups import Followup, FollowupStatus
from mergebot.ids import FollowupId
from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys

# KEYS: followups hash, latest-by-slug hash. ARGV: id, slug, previous id read ('' = none), JSON.
# Answers {0, stored} when the id exists, {2} when the slug's newest changed meanwhile (re-read).
_CREATE_LUA = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {0, existing} end
local previous = redis.call('HGET', KEYS[2], ARGV[2]) or ''
if previous ~= ARGV[3] then return {2, ''} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return {1, ARGV[4]}
"""

# KEYS: followups hash. ARGV: id, expected JSON, new JSON.
_CAS_LUA = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class FollowupNotFoundError(KeyError):
    def __init__(self, followup_id: str) -> None:
        super().__init__(followup_id)
        self.followup_id = followup_id

    def __str__(self) -> str:
        return f"no follow-up {self.followup_id!r}"


class FollowupStore:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._create = redis.register_script(_CREATE_LUA)
        self._cas = redis.register_script(_CAS_LUA)

    async def create(self, followup: Followup) -> tuple[Followup, bool]:
        """Store a new follow-up linked to the slug's previous one; (stored, created)."""
        keys = [self.keys.followups(followup.repo), self.keys.followup_latest(followup.repo)]
        for _ in range(20):
            previous = cast(
                str | None,
                await self.redis.hget(self.keys.followup_latest(followup.repo), followup.slug),
            )
            linked = followup.model_copy(
                update={"previous_id": previous if previous != followup.id else None}
            )
            reply = await self._create(
                keys=keys,
                args=[followup.id, followup.slug, previous or "", linked.model_dump_json()],
            )
            outcome = int(reply[0])
            if outcome == 2:
                continue
            return Followup.model_validate_json(reply[1]), outcome == 1
        raise RuntimeError(f"could not create follow-up {followup.id}: too many races")

    async def get(self, repo: str, followup_id: FollowupId) -> Followup | None:
        raw = await self.redis.hget(self.keys.followups(repo), followup_id)
        return Followup.model_validate_json(cast(str, raw)) if raw else None

    async def query(
        self,
        repo: str,
        *,
        status: FollowupStatus | None = None,
        since: datetime | None = None,
        slug: str | None = None,
    ) -> list[Followup]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.followups(repo)))
        items = [Followup.model_validate_json(v) for v in raw.values()]
        items = [
            f
            for f in items
            if (status is None or f.status is status)
            and (since is None or f.updated_at >= since)
            and (slug is None or f.slug == slug)
        ]
        return sorted(items, key=lambda f: (f.blocked_at, f.id))

    async def repos_with(self, followup_id: FollowupId) -> list[str]:
        """Which repos have a follow-up of this id (ids are unique within a repo)."""
        repos = sorted(cast(set[str], await self.redis.smembers(self.keys.repos())))
        found = []
        for repo in repos:
            if await self.redis.hexists(self.keys.followups(repo), followup_id):
                found.append(repo)
        return found

    async def update(
        self, repo: str, followup_id: FollowupId, change: Callable[[Followup], Followup]
    ) -> Followup:
        """Apply a pure change (claim, resolve) with compare-and-set; re-read on a race.
        The change's own errors (FollowupStateError) propagate and nothing is written."""
        key = self.keys.followups(repo)
        for _ in range(20):
            raw = cast(str | None, await self.redis.hget(key, followup_id))
            if raw is None:
                raise FollowupNotFoundError(followup_id)
            current = Followup.model_validate_json(raw)
            new = change(current)
            if new == current:
                return current
            if await self._cas(keys=[key], args=[followup_id, raw, new.model_dump_json()]):
                return new
        raise RuntimeError(f"follow-up {followup_id} changed too often to update")
