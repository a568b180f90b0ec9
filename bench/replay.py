"""`mergebot replay` of a long event log, against reading the same log with XRANGE + json.loads.

    python bench/replay.py [--events N] [--repos R] [--rounds K] [--jobs J]

Builds R real bare git repositories (one `git fast-import` each, one branch per candidate),
appends N events (approval, push, finalize_ready per candidate, repos interleaved) to an
embedded Redis, stores the projection once (`replay --apply`, not timed), then runs K
interleaved rounds of:
- the baseline: every entry of the log read with XRANGE (1,000 per call) and its envelope
  parsed with `json.loads` — what a plain reader of the log pays (replay itself reads it with a
  script that returns only ids and envelopes, which is cheaper to parse);
- `replay` in one process: one pass over the log, one fetch per repo and one evaluation per
  slug, the queue rebuilt under scratch keys and compared with the stored one, the projection
  compared in memory (it must find no difference);
- `replay` as `mergebot replay` runs it by default: the repos shared out to one process per
  CPU (up to 4; J with --jobs), each replaying its share from the same log.
Targets (the last row): at least 20,000 events/s, and within 5x the baseline's time. Default:
100,000 events over 10 repos, about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import Clock, report, run_in_scratch
from at_scale import candidate_events, make_remote

from mergebot.config import ServerConfig, Settings
from mergebot.events import envelope_for, parse_event
from mergebot.rebuild import default_jobs, replay
from mergebot.runtime import build_runtime
from mergebot.store.connection import connect
from mergebot.store.keys import Keys


async def read_log(redis: Any, keys: Keys) -> int:
    count = 0
    for partition in keys.all_partitions():
        start = "-"
        while True:
            rows = await redis.xrange(keys.events(partition), start, "+", count=1000)
            for _entry_id, fields in rows:
                json.loads(fields["envelope"])
            count += len(rows)
            if len(rows) < 1000:
                break
            ms, seq = rows[-1][0].split("-")
            start = f"{ms}-{int(seq) + 1}"
    return count


async def run(args: argparse.Namespace, tmp: Path, url: str) -> None:
    per_repo = max(1, args.events // 3 // args.repos)
    repos = [f"bench/r{i:03d}" for i in range(args.repos)]
    began = time.perf_counter()
    remotes = {repo: tmp / f"{repo.replace('/', '_')}.git" for repo in repos}
    shas = {repo: sorted(make_remote(remotes[repo], per_repo).items()) for repo in repos}
    raws: list[dict[str, Any]] = []
    for i in range(per_repo):
        for repo in repos:
            raws += candidate_events(repo, *shas[repo][i])
    redis = connect(url)
    keys = Keys()
    config = ServerConfig({}, {repo: {"remote": str(path)} for repo, path in remotes.items()})
    runtime = build_runtime(Settings(data_dir=tmp / "data"), config, redis, keys, redis_url=url)
    envelopes = [envelope_for(parse_event(raw).event, source="bench") for raw in raws]
    for start in range(0, len(envelopes), 500):
        await runtime.eventlog.append_many(envelopes[start : start + 500])
    made = time.perf_counter() - began
    print(f"{len(raws)} events of {per_repo * len(repos)} candidates stored in {made:.1f} s")
    first = await replay(runtime, apply=True, jobs=1)  # what the processor would have stored
    assert first.entries == len(raws), first.entries
    jobs = default_jobs() if args.jobs is None else args.jobs
    base = Clock("XRANGE + json.loads of every entry (baseline)")
    alone, shared = Clock("replay in one process"), Clock(f"replay, up to {jobs} processes")
    processes = 1
    for _ in range(args.rounds):
        with base.span(len(raws)), base.op():
            assert await read_log(redis, keys) == len(raws)
        for clock, asked in ((alone, 1), (shared, jobs)):
            if clock is shared and jobs == 1:
                continue
            with clock.span(len(raws)), clock.op():
                found = await replay(runtime, jobs=asked)
            assert found.entries == len(raws), found.entries
            assert found.differences == 0, [r.differences[:3] for r in found.repos]
            if clock is shared:
                processes = found.processes
    runtime.close_mirrors()
    await redis.aclose()
    b, one = base.timing(), alone.timing()
    rows = [(b, None), (one, b)] + ([(shared.timing(), b)] if jobs > 1 else [])
    report(f"replay of {len(raws)} events, {args.rounds} interleaved rounds", rows, "events")
    r = rows[-1][0]
    print(
        f"\nreplay ({processes} process{'es' if processes > 1 else ''}): "
        f"{r.items_per_second:,.0f} events/s (target >= 20,000), "
        f"{b.items_per_second / r.items_per_second:.1f}x the baseline's time (target <= 5x); "
        f"in one process {one.items_per_second:,.0f} events/s; "
        "no difference from the stored projection and queue"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repos", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="processes of the shared replay (default: mergebot's)",
    )
    args = parser.parse_args()
    run_in_scratch(run, args)


if __name__ == "__main__":
    main()
