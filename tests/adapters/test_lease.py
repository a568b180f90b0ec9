"""The integration lease on real Redis: one holder, token-only renew/release, expiry, loss."""

from __future__ import annotations

import asyncio
import time

import pytest

from mergebot.store.connection import RedisClient, connect
from mergebot.store.keys import Keys
from mergebot.store.lease import Lease, LeaseBusyError, LeaseLostError
from tests.waiting import until

REPO = "acme/widgets"


def lease(redis: RedisClient, keys: Keys, owner: str, **kw: float) -> Lease:
    return Lease(redis, keys, REPO, "main", owner, **kw)


async def test_eight_concurrent_acquirers_exactly_one_holds(redis_url: str, keys: Keys) -> None:
    clients = [connect(redis_url) for _ in range(8)]
    try:
        leases = [lease(c, keys, f"session-{i}") for i, c in enumerate(clients)]
        results = await asyncio.gather(*(lz.acquire() for lz in leases))
        assert results.count(True) == 1
        winner = leases[results.index(True)]
        holder = await leases[0].holder()
        assert holder is not None
        assert holder.owner_session_id == winner.owner
        raw = await clients[0].hgetall(keys.lease(REPO, "main"))
        assert set(raw) == {
            "owner_session_id", "lease_token", "acquired_at", "renewed_at", "expires_at",
        }  # fmt: skip
        assert raw["lease_token"] == winner.token
    finally:
        for client in clients:
            await client.aclose()


async def test_key_is_named_after_repo_and_base(keys: Keys) -> None:
    assert keys.lease(REPO, "main").endswith("integration/acme/widgets/main")


async def test_wrong_token_cannot_renew_or_release(redis: RedisClient, keys: Keys) -> None:
    holder = lease(redis, keys, "a")
    assert await holder.acquire()
    intruder = lease(redis, keys, "b")
    intruder._token = "not-the-token"  # a forged or stale token
    assert not await intruder.renew()
    assert not await intruder.release()
    info = await holder.holder()
    assert info is not None
    assert info.owner == "a"
    assert await holder.renew()
    assert await holder.release()
    assert await holder.holder() is None


async def test_same_owner_reacquire_extends_and_keeps_token(redis: RedisClient, keys: Keys) -> None:
    first = lease(redis, keys, "a")
    assert await first.acquire()
    before = await first.holder()
    second = lease(redis, keys, "a")
    assert await second.acquire()
    after = await second.holder()
    assert before is not None
    assert after is not None
    assert second.token == first.token
    assert after.acquired_at == before.acquired_at
    assert after.expires_at >= before.expires_at


async def test_busy_lease_is_not_broken_before_expiry_then_is(
    redis: RedisClient, keys: Keys
) -> None:
    old = lease(redis, keys, "a", ttl_seconds=0.3, renew_seconds=0.1)
    assert await old.acquire()
    new = lease(redis, keys, "b", ttl_seconds=5, renew_seconds=1)
    started = time.monotonic()
    assert not await new.acquire()
    await until(new.acquire, "the expired lease to be taken over", timeout=5.0)
    assert time.monotonic() - started >= 0.25  # only after the holder's lease ran out
    info = await new.holder()
    assert info is not None
    assert info.owner == "b"
    assert not await old.renew()
    assert old.lost.is_set()
    with pytest.raises(LeaseLostError):
        old.ensure()


async def test_held_renews_in_background_beyond_ttl(redis: RedisClient, keys: Keys) -> None:
    holder = lease(redis, keys, "a", ttl_seconds=0.3, renew_seconds=0.05)
    other = lease(redis, keys, "b")
    async with holder.held():
        start = time.monotonic()
        while time.monotonic() - start < 0.8:  # well past one TTL: renewals keep it ours
            assert not await other.acquire()
            holder.ensure()
            await asyncio.sleep(0.05)
    assert await holder.holder() is None  # released on exit
    assert await other.acquire()


async def test_renewal_failure_is_reported_to_the_holder(redis: RedisClient, keys: Keys) -> None:
    holder = lease(redis, keys, "a", ttl_seconds=5, renew_seconds=0.05)
    async with holder.held():
        holder.ensure()
        # An operator (or a confused replica) takes the key over.
        await redis.hset(keys.lease(REPO, "main"), "lease_token", "stolen")
        await asyncio.wait_for(holder.lost.wait(), timeout=5)
        with pytest.raises(LeaseLostError):
            holder.ensure()
    assert await redis.hget(keys.lease(REPO, "main"), "lease_token") == "stolen"


async def test_held_refuses_when_someone_else_holds(redis: RedisClient, keys: Keys) -> None:
    assert await lease(redis, keys, "a").acquire()
    with pytest.raises(LeaseBusyError):
        async with lease(redis, keys, "b").held():
            pytest.fail("must not enter")


def test_bad_timing_is_refused(keys: Keys) -> None:
    with pytest.raises(ValueError, match="renewed more often"):
        Lease(None, keys, REPO, "main", "a", ttl_seconds=10, renew_seconds=10)  # type: ignore[arg-type]


async def test_a_lease_its_holder_never_released_counts_a_takeover(
    redis: RedisClient, keys: Keys
) -> None:
    history = keys.lease_history(keys.lease(REPO, "main"))
    first = lease(redis, keys, "first", ttl_seconds=0.2, renew_seconds=0.1)
    assert await first.acquire()
    assert await first.release()
    second = lease(redis, keys, "second", ttl_seconds=0.2, renew_seconds=0.1)
    assert await second.acquire()  # released before: not a takeover
    assert await second.acquire()  # the same owner again: not a takeover
    assert await redis.hget(history, "takeovers") is None

    async def expired() -> bool:
        return await second.holder() is None

    await until(expired, what="the lease to run out")  # "second" crashed: never released
    third = lease(redis, keys, "third")
    assert await third.acquire()
    assert await redis.hget(history, "takeovers") == "1"
    assert await third.release()
