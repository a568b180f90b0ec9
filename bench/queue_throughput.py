"""Queue throughput: how many candidates the train lands per minute at depth 1, 4, 8, with an
adaptive window and with batches of 4 and 8 (alone and at depth 4), against the theory; and what
the bot itself costs per candidate against the same git work done by hand, both measured in the
same run.

    python bench/queue_throughput.py [--candidates 24] [--check-seconds 3] [--fail-share 0.1]
                                     [--seed 7] [--rounds 2] [--write docs/benchmarks.md]

Each scenario gets a fresh bare remote (`main` plus one branch per candidate, each adding its own
file), a fresh embedded Redis key space and data dir; the candidates are made READY with
canonical events and folded by the processor, then one integrator drains the queue and the wall
time of that drain is what is measured. The check command is `sleep T`; a seeded share p of the
candidates carries a `bad-<n>.txt` that makes it fail after the sleep (the same candidates fail
at every depth). Reported per scenario: landings per minute, the theory for window W and check
time T — (1-p)(1-(1-p)^W)/(p*T), and W/T at p = 0 — with the ratio to it, the speed-up against
depth 1 at the same p, and CI runs per landing (check commands started / candidates landed).

The theory is an expectation over where the failing candidates fall; one draw of 24 is a poor
estimate of it (a failure at the head of a full window wastes the whole window: with seed 7 a
bot that costs nothing reaches 0.85x the theory at depth 4, with other draws up to 1.0x). So each
round draws its own failing set (seed, seed + 1, ...; every scenario of a round sees the same
draw), and rates are total landings over total drain time of all rounds. Beside the theory, a
zero-cost model of the train (`model_seconds`: every car checked in exactly T, rebuilt and
restarted the moment a car ahead of it fails, nothing else costs time) is run on the same draws:
measured against the model is what the bot itself costs; the model against the theory is what
the finite run and the draws cost.

Batches of B: at p = 0, W*B/T landings per unit time and 1/B CI runs per landing. At depth 1
("batch B") a red batch is bisected one probe at a time, each culprit costing at most
ceil(log2 B) + 1 runs, so the theory for bisection is (1 + p*B*(ceil(log2 B) + 1)) / (B*(1-p))
CI runs per landing, and landings per unit time B*(1-p) / (T*(1 + p*B*(ceil(log2 B) + 1))). At
depth 4 ("batch B, depth 4") both halves of a red batch are checked at once on the batch's own
base (a green half lands first, even ahead of a red sibling): each culprit costs at most
2*ceil(log2 B) + 1 runs — the CI theory shown for those rows — for one check time per level
instead of one run per level plus the final check of what is left. Both are shown beside the
measurement (at depth > 1 and p > 0 the throughput theory is left out: cars behind a bisection
wait for it, and how long depends on where the culprits are).

Bot overhead: with a check command that costs nothing (`true`), a drain's time per candidate is
the bot's own work (git, Redis, bookkeeping); the baseline is the same git work by hand, per
candidate: fetch, worktree add, merge, push the integration branch, push base, delete the
branch, remove the worktree. Both run three times per round in alternating order (medians of
all) and count their git processes (a `git` shim on PATH). Bounded: about 7 minutes per round
with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from _common import ROOT, embedded_redis, machine

from mergebot.config import Settings, parse_server_config
from mergebot.events import envelope_for, parse_event
from mergebot.integrator import Integrator
from mergebot.processor import process_available
from mergebot.queue import Status
from mergebot.runtime import build_runtime
from mergebot.store.connection import connect
from mergebot.store.keys import Keys
from mergebot.store.queue import QueueStore

REPO = "acme/widgets"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
GIT = shutil.which("git") or "/usr/bin/git"
OVERHEAD_PAIRS = 3  # bot and by-hand drains per round for the overhead ratio (medians)


def git(cwd: Path, *args: str, exe: str = GIT) -> str:
    done = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, check=True, env=_git_env()
    )
    return done.stdout.strip()


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


@dataclass(frozen=True)
class Cand:
    slug: str
    branch: str
    sha: str
    bad: bool


def make_remote(root: Path, count: int, bad: set[int]) -> tuple[Path, list[Cand]]:
    """A bare remote with `main` and one branch per candidate (a file of its own each)."""
    bare, work = root / "remote.git", root / "work"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    (work / "README.md").write_text("bench\n")
    git(work, "add", "README.md")
    git(work, "commit", "-q", "-m", "initial commit")
    git(work, "push", "-q", "origin", "main")
    cands = []
    for n in range(count):
        branch = f"feature/c{n}"
        git(work, "checkout", "-q", "-B", branch, "main")
        name = f"bad-{n}.txt" if n in bad else f"f{n}.txt"
        (work / name).write_text(f"{n}\n")
        git(work, "add", name)
        git(work, "commit", "-q", "-m", f"change {n}")
        cands.append(Cand(f"c{n}", branch, git(work, "rev-parse", "HEAD"), n in bad))
    git(work, "push", "-q", "origin", *[c.branch for c in cands])
    return bare, cands


def events_for(cands: list[Cand]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, c in enumerate(cands):
        at = (T0 + timedelta(seconds=n)).isoformat()
        out += [
            {"name": "branch_pushed", "repo": REPO, "branch": c.branch, "sha": c.sha,
             "remote": "origin", "pushed_at": at, "pusher": "bench"},
            {"name": "finalize_ready", "repo": REPO, "slug": c.slug, "branch": c.branch,
             "sha": c.sha, "worker_session_id": "w", "orchestrator_session_id": "o",
             "ready_at": at},
            {"name": "review_approved", "repo": REPO, "slug": c.slug, "approved_at": at,
             "review_round": 1, "reviewer_session_id": "alice", "sha": c.sha},
        ]  # fmt: skip
    return out


class Scenario(NamedTuple):
    label: str
    pipeline: str
    window: int
    share: float
    batch: int = 1


@dataclass
class Run:
    seconds: float
    landed: int
    blocked: int
    ci_runs: int
    git_processes: int


async def drain(
    redis_url: str,
    root: Path,
    *,
    count: int,
    bad: set[int],
    pipeline: str,
    commands: list[str],
    counter: Path | None = None,
    batch: int = 1,
) -> Run:
    """One scenario: a fresh remote and key space, queue `count` candidates, drain, measure."""
    bare, cands = await asyncio.to_thread(_prepare, root, count, bad)
    runs = root / "ci-runs"
    toml = "\n".join(
        [
            f'[repos."{REPO}"]',
            f'remote = "{bare}"',
            'forge = "git"',
            "grace_seconds = 0",
            f"pipeline = {pipeline}",
            f"batch = {{ max_size = {batch} }}",
            f'[repos."{REPO}".checks]',
            f"commands = {commands!r}".replace("'", '"'),
        ]
    )
    # Checks run as this process's user, unsandboxed: they write the CI-run count in our tmp dir.
    settings = Settings(
        data_dir=root / "data",
        redis_url=redis_url,
        check_user=str(os.geteuid()),
        check_sandbox="none",
    )
    keys = Keys(prefix=f"bench:{uuid.uuid4().hex[:8]}:v1")
    client = connect(redis_url)
    runtime = build_runtime(settings, parse_server_config(toml, "mergebot.toml"), client, keys)
    try:
        envs = [envelope_for(parse_event(e).event, source="bench") for e in events_for(cands)]
        await runtime.eventlog.append_many(envs)
        for partition in keys.all_partitions():
            await process_available(runtime, partition, "bench")
        before = _count(counter)
        started = time.perf_counter()
        result = await Integrator(runtime, REPO, owner="bench").drain()
        seconds = time.perf_counter() - started
        assert result.status == "done", result.as_json()
        found = await QueueStore(client, keys).items(REPO, "main")
        landed = sum(1 for i in found if i.status is Status.INTEGRATED)
        blocked = sum(1 for i in found if i.status is Status.BLOCKED)
        assert landed + blocked == count, [(i.slug, i.status) for i in found]
        assert landed == count - len(bad), "a failing candidate landed, or a good one did not"
        processes = _count(counter) - before
    finally:
        runtime.close_mirrors()
        async for key in client.scan_iter(match=f"{keys.prefix}:*", count=500):
            await client.delete(key)
        await client.aclose()
    ci = _count(runs)
    return Run(seconds, landed, blocked, ci, processes)


def _prepare(root: Path, count: int, bad: set[int]) -> tuple[Path, list[Cand]]:
    root.mkdir(parents=True)
    (root / "ci-runs").touch()
    return make_remote(root, count, bad)


def _count(counter: Path | None) -> int:
    if counter is None or not counter.exists():
        return 0
    return len(counter.read_bytes().splitlines())


def by_hand(root: Path, count: int) -> float:
    """The same git work by hand, per candidate: fetch, worktree add, merge, push the branch,
    push base from the exact old sha, delete the branch, remove the worktree."""
    root.mkdir(parents=True)
    bare, cands = make_remote(root, count, set())
    mirror = root / "mirror.git"
    git(root, "clone", "-q", "--bare", str(bare), str(mirror))
    git(mirror, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
    started = time.perf_counter()
    for c in cands:  # through PATH: the counting shim, when there is one
        git(mirror, "fetch", "-q", "--prune", "origin", exe="git")
        base = git(mirror, "rev-parse", "refs/remotes/origin/main", exe="git")
        tree = root / f"wt-{c.slug}"
        git(mirror, "worktree", "add", "-q", "--detach", str(tree), base, exe="git")
        git(tree, "merge", "-q", "--no-ff", "-m", f"Merge {c.slug}", c.sha, exe="git")
        branch = f"refs/heads/mergebot/integration/{c.slug}"
        git(tree, "push", "-q", "origin", f"HEAD:{branch}", exe="git")
        lease = f"--force-with-lease=refs/heads/main:{base}"
        git(tree, "push", "-q", lease, "origin", "HEAD:main", exe="git")
        git(tree, "push", "-q", "origin", f":{branch}", exe="git")
        git(mirror, "worktree", "remove", "--force", str(tree), exe="git")
    return (time.perf_counter() - started) / count


def theory(window: int, p: float, check: float) -> float:
    """Landings per minute of a window of W cars checked in T seconds, a share p failing."""
    if p == 0:
        return 60 * window / check
    return 60 * (1 - p) * (1 - (1 - p) ** window) / (p * check)


def batch_runs_theory(size: int, p: float, window: int = 1) -> float:
    """CI runs per landing for batches of `size`: one run per batch, plus at most
    ceil(log2 B) + 1 runs per culprit (bisection one probe at a time, depth 1), or
    2*ceil(log2 B) + 1 (both halves at once, depth > 1)."""
    levels = math.ceil(math.log2(size))
    per_culprit = 2 * levels + 1 if window > 1 else levels + 1
    return (1 + p * size * per_culprit) / (size * (1 - p))


def batch_theory(size: int, window: int, p: float, check: float) -> float | None:
    """Landings per minute for batches of `size` in a window of `window` cars (None: not
    derived, see the module docstring)."""
    if p == 0:
        return 60 * window * size / check
    if window > 1:
        return None
    return 60 / (check * batch_runs_theory(size, p))


def shim(root: Path) -> Path:
    """A `git` on PATH that counts its calls in `root/count` before running the real git."""
    bindir = root / "bin"
    bindir.mkdir(parents=True)
    counter = root / "count"
    script = bindir / "git"
    script.write_text(f'#!/bin/sh\necho >> "{counter}"\nexec "{GIT}" "$@"\n')
    script.chmod(0o755)
    return counter


async def main_async(args: argparse.Namespace) -> str:
    n, check, p = args.candidates, args.check_seconds, args.fail_share
    draws = [failing(n, p, args.seed + r) for r in range(args.rounds)]
    p_real = len(draws[0]) / n
    adaptive = "{ depth = 1, adaptive = true, max_depth = 8 }"
    scenarios: list[Scenario] = []
    for share in (0.0, p_real):
        scenarios += [
            Scenario("depth 1", "{ depth = 1 }", 1, share),
            Scenario("depth 4", "{ depth = 4 }", 4, share),
            *([Scenario("depth 8", "{ depth = 8 }", 8, share)] if not share else []),
            Scenario("adaptive (1 to 8)", adaptive, 8, share),
            Scenario("batch 4", "{ depth = 1 }", 1, share, 4),
            Scenario("batch 8", "{ depth = 1 }", 1, share, 8),
            Scenario("batch 4, depth 4", "{ depth = 4 }", 4, share, 4),
            Scenario("batch 8, depth 4", "{ depth = 4 }", 4, share, 8),
        ]
    results: dict[int, list[Run]] = {i: [] for i in range(len(scenarios))}
    overhead_bot: list[float] = []
    overhead_hand: list[float] = []
    processes_bot: list[float] = []
    processes_hand: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mergebot-bench-") as tmp, embedded_redis() as url:
        base = Path(tmp)
        counter = shim(base)
        os.environ["PATH"] = f"{base / 'bin'}:{os.environ['PATH']}"
        for round_ in range(args.rounds):
            order = list(range(len(scenarios)))
            if round_ % 2:
                order.reverse()  # interleaved: each scenario sees the load of every other
            for i in order:
                label, pipeline, _w, share, size = scenarios[i]
                bad = draws[round_] if share else set()
                commands = [f"echo run >> {base / 'runs'}-{round_}-{i}/ci-runs; sleep {check}",
                            "! ls bad-*.txt >/dev/null 2>&1"]  # fmt: skip
                run = await drain(
                    url,
                    base / f"runs-{round_}-{i}",
                    count=n,
                    bad=bad,
                    pipeline=pipeline,
                    commands=commands,
                    batch=size,
                )
                results[i].append(run)
                print(f"  round {round_ + 1} {label} p={share:.2f}: {run.seconds:.1f}s", flush=True)
            # Bot overhead against the same git work by hand: a few short pairs per round, in
            # alternating order, so a burst of load elsewhere does not decide the ratio.
            small = max(4, min(n, 12))
            for pair in range(OVERHEAD_PAIRS):
                tag = f"{round_}-{pair}"
                for side in ("hand", "bot") if pair % 2 == 0 else ("bot", "hand"):
                    if side == "hand":
                        hand_before = _count(counter)
                        overhead_hand.append(by_hand(base / f"hand-{tag}", small))
                        processes_hand.append((_count(counter) - hand_before) / small)
                        continue
                    run = await drain(
                        url,
                        base / f"bot-{tag}",
                        count=small,
                        bad=set(),
                        pipeline="{ depth = 1 }",
                        commands=["true"],
                        counter=counter,
                    )
                    overhead_bot.append(run.seconds / small)
                    processes_bot.append(run.git_processes / small)
    return table(args, scenarios, results, draws, overhead_bot, overhead_hand,
                 processes_bot, processes_hand)  # fmt: skip


def failing(n: int, p: float, seed: int) -> set[int]:
    """Exactly the share p (rounded) of n candidates, drawn with `seed`."""
    return set(random.Random(seed).sample(range(n), round(p * n)))


def model_seconds(n: int, bad: set[int], window: int, check: float) -> float:
    """The drain time of a train that costs nothing but its checks: up to `window` cars in
    flight, each checked in exactly `check` seconds from its (re)start; a car whose check
    failed is taken out at that moment and every car behind it restarts (it stood on the
    failed one); leading passed cars land at once and their slots refill from the queue."""
    queue = list(range(n))
    cars: list[list[float]] = []  # [candidate, started]
    now = 0.0
    while queue or cars:
        while len(cars) < window and queue:
            cars.append([queue.pop(0), now])
        now = min(started for _, started in cars) + check
        failed = [i for i, (c, started) in enumerate(cars) if c in bad and started + check <= now]
        if failed:
            first = failed[0]
            cars.pop(first)
            for car in cars[first:]:
                car[1] = now
        while cars and cars[0][0] not in bad and cars[0][1] + check <= now:
            cars.pop(0)
    return now


def table(
    args: argparse.Namespace,
    scenarios: list[Scenario],
    results: dict[int, list[Run]],
    draws: list[set[int]],
    overhead_bot: list[float],
    overhead_hand: list[float],
    processes_bot: list[float],
    processes_hand: list[float],
) -> str:
    n, check = args.candidates, args.check_seconds
    seeds = ", ".join(str(args.seed + r) for r in range(args.rounds))
    lines = [
        f"{n} candidates, check `sleep {check}`, failing share p = {len(draws[0]) / n:.2f} "
        f"drawn anew each round (seeds {seeds}), {args.rounds} interleaved round(s); "
        f"{machine()}",
        "",
        "| scenario | p | drain s (rounds) | landings/min | theory/min | of theory "
        "| zero-cost model/min | of model | vs depth 1 | CI runs per landing | theory |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    serial: dict[float, float] = {}
    for i, (label, pipeline, window, share, size) in enumerate(scenarios):
        runs = results[i]
        landed = sum(r.landed for r in runs)
        per_min = 60 * landed / sum(r.seconds for r in runs)
        if window == 1 and size == 1:
            serial[share] = per_min
        ideal = (
            batch_theory(size, window, share, check) if size > 1 else theory(window, share, check)
        )
        modelled = size == 1 and "adaptive" not in pipeline
        model = (
            60 * landed / sum(model_seconds(n, d if share else set(), window, check) for d in draws)
            if modelled
            else None
        )
        ci = sum(r.ci_runs for r in runs) / max(landed, 1)
        ci_ideal = batch_runs_theory(size, share, window) if size > 1 else None
        speedup = per_min / serial[share] if share in serial else float("nan")
        ideal_text = f"{ideal:.1f} | {per_min / ideal:.2f}x" if ideal else "n/a | n/a"
        model_text = f"{model:.1f} | {per_min / model:.2f}x" if model else "n/a | n/a"
        ci_text = f"{ci_ideal:.2f}" if ci_ideal is not None else ""
        drains = ", ".join(f"{r.seconds:.1f}" for r in runs)
        lines.append(
            f"| {label} | {share:.2f} | {drains} | {per_min:.1f} | {ideal_text} | {model_text} | "
            f"{speedup:.2f}x | {ci:.2f} | {ci_text} |"
        )
    bot, hand = statistics.median(overhead_bot), statistics.median(overhead_hand)
    lines += [
        "",
        "| bot overhead per candidate (check `true`, depth 1) | seconds | git processes |",
        "|---|---|---|",
        f"| by hand (baseline) | {hand:.3f} | {statistics.median(processes_hand):.1f} |",
        f"| mergebot | {bot:.3f} ({bot / hand:.2f}x) | {statistics.median(processes_bot):.1f} |",
    ]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Replace the queue-throughput section of `path` (or create the file)."""
    start, end = "<!-- queue_throughput:start -->", "<!-- queue_throughput:end -->"
    block = f"{start}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--check-seconds", type=float, default=3.0)
    parser.add_argument("--fail-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", type=Path, help="put the table into this Markdown file")
    args = parser.parse_args()
    print(f"queue throughput: {args.candidates} candidates, check sleep {args.check_seconds}s")
    text = asyncio.run(main_async(args))
    print()
    print(text)
    if args.write:
        write(args.write, text)
        print(f"\nwritten to {args.write}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
