"""Reading large hashes whole, in one string per call.

redis-py parses a reply element by element in Python, a few microseconds each: the HGETALL of
a hash with tens of thousands of fields (a repo's queue items, its projection per slug) costs
more to parse than everything Redis does for it. A script instead reads the hashes and joins
every field and value into one string with a separator that neither JSON text (where raw
control characters are not allowed, not even as whitespace) nor a key mergebot writes holds;
splitting it costs next to nothing. Should a field or value hold the separator after all, the
pieces do not add up and the hashes are read again with HGETALL. Either way all of them are
read at one moment (one script, or one MULTI), so they must share a hash slot on a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from mergebot.store.connection import RedisClient

SEPARATOR = "\x1e"

# Reply: {fields and values per hash, space-separated; every field and value, joined}.
_READ_LUA = """
local counts, parts = {}, {}
for i, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  counts[i] = #flat
  for _, value in ipairs(flat) do parts[#parts + 1] = value end
end
return {table.concat(counts, ' '), table.concat(parts, '\\30')}
"""


class HashReader:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._read = redis.register_script(_READ_LUA)

    async def read(self, keys: Sequence[str]) -> list[dict[str, str]]:
        """Every field and value of each hash in `keys` (empty for a missing one), in order."""
        counts_text, packed = await self._read(keys=list(keys))
        counts = [int(c) for c in str(counts_text).split()]
        pieces = str(packed).split(SEPARATOR) if sum(counts) else []
        if len(pieces) != sum(counts):
            return await self._read_plainly(keys)
        found: list[dict[str, str]] = []
        start = 0
        for count in counts:
            flat = pieces[start : start + count]
            found.append(dict(zip(flat[0::2], flat[1::2], strict=True)))
            start += count
        return found

    async def _read_plainly(self, keys: Sequence[str]) -> list[dict[str, str]]:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return cast(list[dict[str, str]], await pipe.execute())
