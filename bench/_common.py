"""Shared helpers for the benchmarks: a throwaway embedded Redis, realistic events, timing.

Every benchmark measures its baseline in the same run, on the same Redis and the same machine,
and prints ratios against it: absolute numbers move with the machine, ratios much less.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a source checkout without installing mergebot
    sys.path.insert(0, str(ROOT))

from mergebot.store.embedded import EmbeddedRedis  # noqa: E402

REPO = "acme/widgets"
WHEN = "2026-11-25T10:00:00+00:00"


@contextlib.contextmanager
def mergebot_process(
    command: str, cwd: Path, settings: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m mergebot <command>` in a child process with only `settings` as its MERGEBOT_*
    environment (output in `<cwd>/<command>.log`); stopped with SIGTERM (a clean shutdown)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEBOT_")}
    env |= settings | {"PYTHONPATH": str(ROOT)}
    log = cwd / f"{command}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mergebot", command],
            cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM):
            print(log.read_text(errors="replace")[-2000:], file=sys.stderr)


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A redis-server of our own in a temporary directory (AOF off: nothing to keep)."""
    with tempfile.TemporaryDirectory(prefix="mergebot-bench-") as tmp:
        server = EmbeddedRedis(Path(tmp), appendonly=False)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def raw_events(count: int, *, repo: str = REPO, tag: str = "") -> list[dict[str, Any]]:
    """`count` valid canonical events, a realistic mix: per task an approval, a push and a
    finalize_ready, each with its own idempotency id."""
    out: list[dict[str, Any]] = []
    task = 0
    while len(out) < count:
        slug, sha = f"task-{tag}{task}", f"{task:040x}"[-40:]
        branch = f"feature/{slug}"
        out += [
            {"name": "review_approved", "id": f"{slug}-approved", "repo": repo, "slug": slug,
             "approved_at": WHEN, "review_round": 1, "reviewer_session_id": "reviewer-1",
             "sha": sha},
            {"name": "branch_pushed", "id": f"{slug}-pushed", "repo": repo, "branch": branch,
             "sha": sha, "remote": "origin", "pushed_at": WHEN, "pusher": "worker-1"},
            {"name": "finalize_ready", "id": f"{slug}-ready", "repo": repo, "slug": slug,
             "branch": branch, "sha": sha, "worker_session_id": "worker-1",
             "orchestrator_session_id": "orchestrator-1", "ready_at": WHEN},
        ]  # fmt: skip
        task += 1
    return out[:count]


@dataclass(frozen=True)
class Timing:
    """A measured phase: how many operations (and items), how long, and per-op latencies."""

    label: str
    ops: int
    items: int
    seconds: float
    latencies: list[float]

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds else float("inf")

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def mean_ms(self) -> float:
        return 1000 * statistics.fmean(self.latencies) if self.latencies else float("nan")


class Clock:
    """Collects per-operation latencies (`with clock.op(): ...`) and the time of the spans the
    phase ran in (`with clock.span(): ...`), so a phase can run in several rounds interleaved
    with its baseline: both then see the same background load on a busy machine."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.items = 0

    @contextlib.contextmanager
    def op(self) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.latencies.append(time.perf_counter() - start)

    @contextlib.contextmanager
    def span(self, items: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds += time.perf_counter() - start
        self.items += items

    def timing(self) -> Timing:
        return Timing(self.label, len(self.latencies), self.items, self.seconds, self.latencies)


def run_in_scratch(run: Callable[[Any, Path, str], Coroutine[Any, Any, None]], args: Any) -> None:
    """Print the machine, run `run(args, scratch dir, embedded Redis URL)`, print the total time;
    the scratch dir and the Redis are removed afterwards."""
    print(f"machine: {machine()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mergebot-bench-") as tmp, embedded_redis() as url:
        asyncio.run(run(args, Path(tmp), url))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def report(title: str, rows: list[tuple[Timing, Timing | None]], unit: str) -> None:
    """One line per phase: throughput, total time, latency percentiles per call (when a phase
    made more than one), and its cost against its baseline: time per item divided by the
    baseline's (1.00x is as cheap, 2.50x takes 2.5 times as long)."""
    print(f"\n{title}")
    head = f"{'phase':<46} {unit + '/s':>11} {'total s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cost':>8}"
    print(head)
    print("-" * len(head))
    for timing, baseline in rows:
        cost = "base"
        if baseline is not None:
            cost = f"{baseline.items_per_second / timing.items_per_second:.2f}x"
        p50 = p99 = "-"
        if timing.ops > 1:
            p50, p99 = f"{timing.percentile_ms(0.5):.3f}", f"{timing.percentile_ms(0.99):.3f}"
        print(
            f"{timing.label:<46} {timing.items_per_second:>11,.0f} {timing.seconds:>8.2f} "
            f"{p50:>7} {p99:>7} {cost:>8}"
        )
