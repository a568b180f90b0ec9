"""Reading large hashes whole in one string: what HGETALL would answer, whatever they hold."""

from __future__ import annotations

from mergebot.store.connection import RedisClient
from mergebot.store.keys import Keys
from mergebot.store.packed import HashReader


async def test_reads_several_hashes_as_hgetall_would(redis: RedisClient, keys: Keys) -> None:
    items, slugs, missing = (f"{keys.prefix}:{{acme/x}}:{name}" for name in ("a", "b", "c"))
    big = {f"item-{i}": f'{{"n":{i},"text":"ü\\u001e"}}' for i in range(2000)}
    await redis.hset(items, mapping=big)
    await redis.hset(slugs, mapping={"": "", "x": ""})  # empty field names and values count
    assert await HashReader(redis).read([items, slugs, missing]) == [big, {"": "", "x": ""}, {}]


async def test_a_field_or_value_holding_the_separator_is_read_all_the_same(
    redis: RedisClient, keys: Keys
) -> None:
    first, second = f"{keys.prefix}:{{acme/x}}:a", f"{keys.prefix}:{{acme/x}}:b"
    await redis.hset(first, mapping={"plain": "1", "odd\x1ekey": "2"})
    await redis.hset(second, mapping={"v": "a\x1eb\x1ec"})
    assert await HashReader(redis).read([first, second]) == [
        {"plain": "1", "odd\x1ekey": "2"},
        {"v": "a\x1eb\x1ec"},
    ]
