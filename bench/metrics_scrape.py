"""What a `/metrics` scrape costs: the queue's metrics against reading the event log once.

    python bench/metrics_scrape.py [--events N] [--rounds R]

On a log of N events of one managed repo (approval + push + finalize per task, and an
`integration_completed` from the integrator for every task):
- baseline: reading and parsing every entry of the log once (`EventLog.replay`), the least any
  fold of the log costs;
- the first scrape of a new process: the whole log folded, then the stored state read;
- a scrape with nothing new (what every scrape after the first costs when the queue is idle);
- a scrape after 30 new events;
- for scale, one `repo_status` call (what the queue API and the dashboard pay per request).
Bounded: N events (default 12,000), about 20 s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO, WHEN, Clock, embedded_redis, machine, raw_events, report
from prometheus_client import CollectorRegistry, generate_latest

from mergebot.config import Settings, parse_server_config
from mergebot.events import envelope_for, parse_event
from mergebot.runtime import Runtime, build_runtime
from mergebot.status import repo_status
from mergebot.store.connection import connect
from mergebot.store.keys import Keys
from mergebot.web.metrics import QueueCollector


def outcome(task: int) -> dict[str, Any]:
    slug, sha = f"task-{task}", f"{task:040x}"[-40:]
    return {
        "name": "integration_completed", "repo": REPO, "slug": slug, "branch": f"feature/{slug}",
        "sha": sha, "main_before": "1" * 40, "main_after": "2" * 40, "integrated_at": WHEN,
        "checks": [{"name": "test", "kind": "command", "state": "passed", "seconds": 12.5}],
        "mode": "live",
    }  # fmt: skip


async def store(runtime: Runtime, raws: list[dict[str, Any]], source: str) -> None:
    envelopes = [envelope_for(parse_event(raw).event, source=source) for raw in raws]
    for start in range(0, len(envelopes), 500):
        await runtime.eventlog.append_many(envelopes[start : start + 500])


async def scrape(collector: QueueCollector, registry: CollectorRegistry) -> bytes:
    await collector.refresh()
    return generate_latest(registry)


async def run(url: str, n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mergebot-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        config = parse_server_config(f'[repos."{REPO}"]\nremote = "{tmp}"\n', "mergebot.toml")
        redis = connect(url)
        runtime = build_runtime(settings, config, redis, Keys(prefix="bench-metrics"))
        tasks = n // 4
        await store(runtime, raw_events(n - tasks), "api")
        await store(runtime, [outcome(t) for t in range(tasks)], "integrator")

        read = Clock("baseline: read + parse the whole log")
        cold = Clock("first scrape (folds the whole log)")
        idle = Clock("scrape, nothing new")
        fresh = Clock("scrape after 30 new events")
        status = Clock("repo_status (queue API), for scale")
        for round_no in range(rounds):
            with read.span(n), read.op():
                _ = [e async for e in runtime.eventlog.replay()]
            collector = QueueCollector(runtime)
            registry = CollectorRegistry(auto_describe=True)
            registry.register(collector)
            with cold.span(n), cold.op():
                body = await scrape(collector, registry)
            for _ in range(20):
                with idle.span(n), idle.op():
                    await scrape(collector, registry)
            extra = raw_events(30, tag=f"r{round_no}-")
            await store(runtime, extra, "api")
            with fresh.span(n), fresh.op():
                await scrape(collector, registry)
            for _ in range(5):
                with status.span(n), status.op():
                    await repo_status(runtime, REPO)
        base = read.timing()
        report(
            f"/metrics on a log of {n:,} events ({tasks:,} outcomes), {rounds} rounds",
            [
                (base, None),
                (cold.timing(), base),
                (idle.timing(), base),
                (fresh.timing(), base),
                (status.timing(), base),
            ],
            "events",
        )
        assert b"mergebot_outcomes_total" in body
        floor = base.percentile_ms(0.5)
        print(f"\nscrape body: {len(body):,} bytes; outcomes counted: {tasks:,}")
        for timing in (cold.timing(), idle.timing(), fresh.timing(), status.timing()):
            ratio = timing.percentile_ms(0.5) / floor
            print(f"p50 of {timing.label!r}: {ratio:.4f}x the baseline's")
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=12000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with embedded_redis() as url:
        asyncio.run(run(url, args.events, args.rounds))


if __name__ == "__main__":
    main()
