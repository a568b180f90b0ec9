"""The readiness projection: folding N events and evaluating the candidates, against a loop
that only files each event away.

    python bench/projection_fold.py [--events N]

Phases, on N already-parsed events of one repo (approval + push + finalize per task):
- baseline: a trivial loop that appends each event to a per-name list (what any fold costs at
  least: one Python iteration and one container write per event);
- `fold` of every event into `RepoFacts`, for the first N/4 events and for all N (the events
  per second of the two show how a fold's cost grows with the number of slugs already known);
- `evaluate` of every candidate afterwards (git answered from memory: every sha reachable);
- the processor's pattern: fold one event, then evaluate the slugs it touched;
- parsing the raw events (pydantic validation), for scale.
Then the projection's JSON size and its (de)serialization time, which the processor pays per
stored batch, and what a status / dashboard call pays to read it from Redis: a full load (what
every call paid before) against `ProjectionCache` while the projection is unchanged. Bounded: N
events (default 12,000), about 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from _common import Clock, Timing, embedded_redis, machine, raw_events, report

from mergebot.config import RepoConfig, ServerConfig
from mergebot.events import CanonicalEvent, envelope_for, parse_event
from mergebot.processor import Projector
from mergebot.readiness import RepoFacts, Rules, evaluate, fold
from mergebot.store.connection import connect
from mergebot.store.eventlog import LogEntry
from mergebot.store.keys import Keys
from mergebot.store.projection import ProjectionCache, ProjectionState, ProjectionStore

REPO = "acme/widgets"


class MemoryGit:
    """Git answered from memory: every sha is on its branch, none on base yet."""

    def reachable(self, sha: str, branch: str) -> bool:
        return True

    def on_base(self, sha: str, base: str) -> bool:
        return False

    def descends(self, sha: str, ancestor: str) -> bool:
        return False

    def tip(self, branch: str) -> str | None:
        return None

    async def snapshot(
        self, repo: str, config: RepoConfig, claims: Mapping[str, str] | None = None
    ) -> MemoryGit:
        return self


def timed(label: str, items: int, body: Any) -> Timing:
    clock = Clock(label)
    with clock.span(items), clock.op():
        body()
    return clock.timing()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=12000)
    args = parser.parse_args()
    n = args.events
    print(f"machine: {machine()}")
    started = time.perf_counter()
    raws = raw_events(n, repo=REPO)
    events: list[CanonicalEvent] = []
    parse = timed("parse + validate (pydantic)", n, lambda: events.extend(
        parse_event(raw).event for raw in raws
    ))  # fmt: skip
    rules, git = Rules(), MemoryGit()

    def baseline() -> None:
        filed: dict[str, list[CanonicalEvent]] = defaultdict(list)
        for event in events:
            filed[event.event_name].append(event)

    facts = RepoFacts(repo=REPO)
    states: dict[str, Any] = {}

    def fold_all() -> None:
        for event in events:
            fold(facts, event)

    def evaluate_all() -> None:
        states.update(evaluate(facts, rules, git))

    incremental_facts = RepoFacts(repo=REPO)

    def incremental() -> None:
        for event in events:
            touched = fold(incremental_facts, event).slugs
            if touched:
                evaluate(incremental_facts, rules, git, touched)

    for _ in range(2):  # warm up (imports, caches), then measure the second run
        base = timed("trivial loop: file each event (baseline)", n, baseline)
    quarter_facts = RepoFacts(repo=REPO)
    quarter = n // 4

    def fold_quarter() -> None:
        for event in events[:quarter]:
            fold(quarter_facts, event)

    folded_quarter = timed(f"fold the first {quarter} events into RepoFacts", quarter, fold_quarter)
    folded = timed(f"fold all {n} events into RepoFacts", n, fold_all)
    evaluated = timed("evaluate every candidate (rate per event)", n, evaluate_all)
    both = timed("fold + evaluate touched slugs, per event", n, incremental)
    ready = sum(1 for s in states.values() if s.status.value == "ready")
    assert ready == n // 3, f"{ready} candidates READY, expected {n // 3}"

    report(
        f"readiness projection, {n} events ({n // 3} candidates, all READY at the end)",
        [
            (base, None),
            (folded_quarter, base),
            (folded, base),
            (evaluated, base),
            (both, base),
            (parse, base),
        ],
        "events",
    )

    state = ProjectionState(repo=REPO, facts=facts, candidates=states)
    dumped = ""

    def dump() -> None:
        nonlocal dumped
        dumped = state.model_dump_json()

    dump_t = timed("dump", 1, dump)
    load_t = timed("load", 1, lambda: ProjectionState.model_validate_json(dumped))
    print(
        f"\nprojection JSON: {len(dumped) / 1e6:.1f} MB for {len(states)} candidates; "
        f"dump {dump_t.seconds * 1000:.0f} ms, load {load_t.seconds * 1000:.0f} ms"
    )
    full, cached, cold, warm = asyncio.run(status_reads(state, events[-1]))
    print(
        f"status read of the stored projection: full load {full * 1000:.0f} ms per call, "
        f"cached while unchanged {cached * 1000:.2f} ms per call"
    )
    print(
        f"processor batch of one event on it: loading the projection first {cold * 1000:.0f} ms, "
        f"reusing the state it stored {warm * 1000:.0f} ms"
    )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


async def status_reads(
    state: ProjectionState, event: CanonicalEvent, calls: int = 5
) -> tuple[float, float, float, float]:
    """Seconds per call: `ProjectionStore.load` vs `ProjectionCache.load` (unchanged state);
    then a processor batch of one event by a new `Projector` (which loads the projection) vs
    by one that stored it last (which reuses its state)."""
    with embedded_redis() as url:
        redis = connect(url)
        try:
            keys = Keys(prefix="bench:v1")
            store = ProjectionStore(redis, keys)
            await store.save(state)
            cache = ProjectionCache()
            await cache.load(store, REPO)
            began = time.perf_counter()
            for _ in range(calls):
                await store.load(REPO)
            full = (time.perf_counter() - began) / calls
            began = time.perf_counter()
            for _ in range(calls * 100):
                await cache.load(store, REPO)
            cached = (time.perf_counter() - began) / (calls * 100)
            config = ServerConfig({}, {REPO: {}})
            envelope = envelope_for(event, source="bench")

            def entry(n: int) -> LogEntry:
                return LogEntry(f"{2**40 + n}-0", 0, envelope)

            began = time.perf_counter()
            for n in range(calls):
                await Projector(redis, keys, config, MemoryGit()).apply(REPO, [entry(n)])
            cold = (time.perf_counter() - began) / calls
            projector = Projector(redis, keys, config, MemoryGit())
            await projector.apply(REPO, [entry(calls)])
            began = time.perf_counter()
            for n in range(calls):
                await projector.apply(REPO, [entry(calls + 1 + n)])
            warm = (time.perf_counter() - began) / calls
            return full, cached, cold, warm
        finally:
            await redis.aclose()


if __name__ == "__main__":
    main()
