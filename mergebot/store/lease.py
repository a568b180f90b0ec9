"""The integration lease of one (repo, base): at most one integrator at a time (SPEC §5).

The key `integration/<repo>/<base>` is a hash with `owner_session_id`, `lease_token`,
`acquired_at`, `renewed_at` and `expires_at` (milliseconds since the epoch, Redis server time, so
replicas with skewed clocks agree). Acquire, renew and release are Lua compare-and-set scripts:
release and renew need the token; another owner can take the key only after `expires_at` (a
stale break); the same owner acquiring again extends its lease and keeps its token.

`async with lease.held():` renews on a timer in the background and sets `lease.lost` the moment a
renewal is refused or the lease has run out without one, so the holder stops before its next
write (`lease.ensure()` raises LeaseLostError then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from redis.exceptions import RedisError

from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys

log = logging.getLogger("mergebot.lease")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: lease, history. ARGV: owner, token, ttl_ms.
# -> {1, token, acquired_at, now, expires_at, broken_owner, taken_over_from}
#  | {0, owner, expires_at}
# The history hash remembers the last holder and whether it released: a new holder taking a lease
# its previous holder never released (crashed, or lost it) counts a takeover there.
_ACQUIRE_LUA = (
    _NOW
    + """
local cur = redis.call('HMGET', KEYS[1], 'owner_session_id', 'lease_token', 'expires_at',
                       'acquired_at')
local ttl = tonumber(ARGV[3])
local broken = ''
if cur[2] then
  local expires = tonumber(cur[3]) or 0
  if expires > now then
    if cur[1] ~= ARGV[1] then return {0, cur[1], tostring(expires)} end
    redis.call('HSET', KEYS[1], 'renewed_at', now, 'expires_at', now + ttl)
    redis.call('PEXPIRE', KEYS[1], ttl)
    return {1, cur[2], cur[4], tostring(now), tostring(now + ttl), '', ''}
  end
  broken = cur[1] or ''
end
local last = redis.call('HMGET', KEYS[2], 'owner', 'released')
local took = ''
if last[1] and last[1] ~= ARGV[1] and last[2] ~= '1' then
  redis.call('HINCRBY', KEYS[2], 'takeovers', 1)
  took = last[1]
end
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'released', '0')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner_session_id', ARGV[1], 'lease_token', ARGV[2],
           'acquired_at', now, 'renewed_at', now, 'expires_at', now + ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, ARGV[2], tostring(now), tostring(now), tostring(now + ttl), broken, took}
"""
)

# ARGV: token, ttl_ms -> expires_at | 0
_RENEW_LUA = (
    _NOW
    + """
local cur = redis.call('HMGET', KEYS[1], 'lease_token', 'expires_at')
if cur[1] ~= ARGV[1] or (tonumber(cur[2]) or 0) <= now then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'renewed_at', now, 'expires_at', now + ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return now + ttl
"""
)

# KEYS: lease, history. ARGV: token -> 1 | 0
_RELEASE_LUA = """
if redis.call('HGET', KEYS[1], 'lease_token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'released', '1')
  return 1
end
return 0
"""


class LeaseLostError(RuntimeError):
    """This process does not (or no longer) hold the lease: it must not write."""


class LeaseBusyError(RuntimeError):
    """Someone else holds the lease and it has not expired."""


def _ms_to_datetime(value: str | int) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


@dataclass(frozen=True)
class LeaseInfo:
    owner_session_id: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    @property
    def owner(self) -> str:
        return self.owner_session_id


class Lease:
    def __init__(  # noqa: PLR0917 - the agreed signature takes ttl/renew positionally
        self,
        redis: RedisClient,
        keys: Keys,
        repo: str,
        base: str,
        owner: str,
        ttl_seconds: float = 120,
        renew_seconds: float = 30,
        *,
        key: str | None = None,
    ) -> None:
        if ttl_seconds <= 0 or renew_seconds <= 0:
            raise ValueError("lease ttl and renew interval must be positive")
        if renew_seconds >= ttl_seconds:
            raise ValueError("the lease must be renewed more often than it expires")
        self.redis = redis
        self.repo = repo
        self.base = base
        self.owner = owner
        self.key = key or keys.lease(repo, base)
        self.history_key = keys.lease_history(self.key)
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.renew_seconds = renew_seconds
        self.lost = asyncio.Event()
        self._token: str | None = None
        self._deadline = 0.0  # time.monotonic() after which our lease has surely expired
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    @property
    def token(self) -> str | None:
        return self._token

    def _context(self) -> str:
        return f"repo={self.repo} base={self.base} owner={self.owner}"

    async def acquire(self) -> bool:
        """Take the lease (or extend it, when this owner already holds it)."""
        started = time.monotonic()
        token = self._token or secrets.token_hex(16)
        reply = await self._acquire(
            keys=[self.key, self.history_key], args=[self.owner, token, self.ttl_ms]
        )
        if int(reply[0]) != 1:
            log.debug("lease_busy %s holder=%s", self._context(), reply[1])
            return False
        self._token = str(reply[1])
        self._deadline = started + self.ttl_ms / 1000
        self.lost.clear()
        if reply[5]:
            log.warning("lease_broken %s previous_owner=%s (expired)", self._context(), reply[5])
        if reply[6]:
            log.warning(
                "lease_taken_over %s previous_owner=%s (never released)", self._context(), reply[6]
            )
        log.info("lease_acquired %s", self._context())
        return True

    async def renew(self) -> bool:
        """Extend the lease; False (and `lost` set) when the token no longer holds it."""
        if self._token is None:
            return False
        started = time.monotonic()
        ok = await self._renew(keys=[self.key], args=[self._token, self.ttl_ms])
        if not ok:
            self._mark_lost("renewal refused")
            return False
        self._deadline = started + self.ttl_ms / 1000
        return True

    async def release(self) -> bool:
        """Give the lease up; only the matching token can (False when it was not ours)."""
        if self._token is None:
            return False
        token, self._token = self._token, None
        released = bool(await self._release(keys=[self.key, self.history_key], args=[token]))
        self.lost.set()
        if released:
            log.info("lease_released %s", self._context())
        return released

    async def holder(self) -> LeaseInfo | None:
        """Who holds the lease now (None when nobody does, or the holder's lease ran out)."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.key))
        return info_from_hash(raw)

    async def expires_in(self, *, default: float) -> float:
        """Seconds until the current holder's lease runs out, by Redis's own clock (the key
        expires with the lease); 0 when nobody holds it, `default` when the key has no expiry."""
        ms = int(await self.redis.pttl(self.key))
        if ms == -2:  # no key: free now
            return 0.0
        return ms / 1000 if ms >= 0 else default

    def ensure(self) -> None:
        """Raise LeaseLostError unless this object still holds the lease; call before writes."""
        if self._token is None or self.lost.is_set():
            raise LeaseLostError(f"lease of {self.repo} ({self.base}) is not held by {self.owner}")
        if time.monotonic() >= self._deadline:
            self._mark_lost("expired without a renewal")
            raise LeaseLostError(f"lease of {self.repo} ({self.base}) expired")

    def _mark_lost(self, why: str) -> None:
        if not self.lost.is_set():
            log.warning("lease_lost %s why=%s", self._context(), why)
        self.lost.set()

    async def _renew_forever(self) -> None:
        while not self.lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lost.wait(), timeout=self._next_renewal())
            if self.lost.is_set():
                return
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                # Redis unreachable: keep trying until our lease has surely run out.
                log.warning("lease_renew_failed %s error=%s", self._context(), type(exc).__name__)
                if time.monotonic() >= self._deadline:
                    self._mark_lost("could not renew before expiry")

    def _next_renewal(self) -> float:
        # Renew on the configured period, but never let the remaining time drop under it.
        remaining = self._deadline - time.monotonic()
        return max(0.0, min(self.renew_seconds, remaining - self.renew_seconds / 2))

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Lease]:
        """Hold the lease for the block: acquire (unless held), renew in the background, release.

        Raises LeaseBusyError when another owner holds it. Inside the block, watch `self.lost`
        or call `self.ensure()` before each write.
        """
        if (self._token is None or self.lost.is_set()) and not await self.acquire():
            raise LeaseBusyError(f"lease of {self.repo} ({self.base}) is held by someone else")
        renewer = asyncio.create_task(self._renew_forever(), name=f"lease-renew:{self.key}")
        try:
            yield self
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if self._token is not None:
                await self.release()


def info_from_hash(raw: dict[str, str]) -> LeaseInfo | None:
    """The lease described by a stored hash, or None when it is absent or expired."""
    if not raw.get("lease_token") or not raw.get("expires_at"):
        return None
    expires = _ms_to_datetime(raw["expires_at"])
    if expires <= datetime.now(UTC):
        return None
    return LeaseInfo(
        owner_session_id=raw.get("owner_session_id", ""),
        acquired_at=_ms_to_datetime(raw.get("acquired_at", raw["expires_at"])),
        renewed_at=_ms_to_datetime(raw.get("renewed_at", raw["expires_at"])),
        expires_at=expires,
    )
