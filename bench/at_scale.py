"""`mergebot serve` at scale: many candidates over many repos, from POST /events to queued.

    python bench/at_scale.py [--full] [--candidates N] [--repos R] [--big B] [--rounds K]

Builds R real bare git repositories on the local disk (one `git fast-import` each: `main` plus
one branch per candidate), and one more, `bench/big`, with B candidates; starts `mergebot serve`
on 127.0.0.1 with its own embedded Redis, every repo managed, and the integration lease of every
repo held by the benchmark (so the processor's work is measured alone: nothing is merged). Then:

- posts the events of N + B candidates (approval, push, finalize_ready each; 50 events per
  request, 8 requests in flight, repos interleaved), the baseline: **time to post**;
- waits until every candidate is queued: **time to queue**, from the first post, as a multiple
  of the time to post (the target is 10x at most);
- the resident memory of the `mergebot serve` process, now and at its peak (target < 200 MB);
- waits until the server has settled (its CPU use under 5% of a core for half a second: the
  notifications that follow queueing are done), then `GET /api/repos/bench/big/queue` (B
  candidates) against `GET /healthz`, K interleaved rounds of 20 calls each: the queue API's
  time as a multiple of a health round trip (target 10x), the first call (which builds the
  list again after the last change) included.

Default sizes (2,000 + 300 candidates over 20 repos) finish in a few minutes on 2 cores;
`--full` runs the sizes the targets are stated for: 10,000 candidates over 100 repos and a
1,000-candidate repo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from _common import WHEN, Clock, mergebot_process, report, run_in_scratch
from events_api import REQUEST_TIMEOUT, cpu_seconds, free_port, phase, wait_until_up

from mergebot.store.connection import connect
from mergebot.store.keys import Keys
from mergebot.store.lease import Lease

BIG = "bench/big"


def make_remote(path: Path, count: int) -> dict[str, str]:
    """A bare repo with `main` and `count` branches `task-<i>`, each one commit on main; the
    branch -> sha map. One fast-import process, so 1,000 branches take well under a second."""
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", str(path)], check=True)
    who = "committer bench <bench@localhost> 1764000000 +0000\n"
    parts = [
        "commit refs/heads/main\nmark :1\n", who, "data 4\ninit\n",
        "M 644 inline README\ndata 3\nhi\n\n",
    ]  # fmt: skip
    for i in range(count):
        body = f"task {i}\n"
        parts += [
            f"commit refs/heads/task-{i}\n", who, f"data {len(body)}\n{body}", "from :1\n",
            f"M 644 inline t{i}.txt\ndata {len(body)}\n{body}\n",
        ]  # fmt: skip
    subprocess.run(
        ["git", "fast-import", "--quiet"], input="".join(parts).encode(), cwd=path, check=True
    )
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads/task-*"],
        cwd=path, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return dict(line.split(" ", 1) for line in out.splitlines())


def candidate_events(repo: str, branch: str, sha: str) -> list[dict[str, Any]]:
    slug = f"{repo.split('/')[1]}-{branch}"
    common = {"repo": repo, "slug": slug}
    return [
        {"name": "review_approved", "id": f"{slug}-approved", **common, "approved_at": WHEN,
         "review_round": 1, "reviewer_session_id": "reviewer-1", "sha": sha},
        {"name": "branch_pushed", "id": f"{slug}-pushed", "repo": repo, "branch": branch,
         "sha": sha, "remote": "origin", "pushed_at": WHEN, "pusher": "worker-1"},
        {"name": "finalize_ready", "id": f"{slug}-ready", **common, "branch": branch, "sha": sha,
         "worker_session_id": "worker-1", "orchestrator_session_id": "orchestrator-1",
         "ready_at": WHEN},
    ]  # fmt: skip


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of a process now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


@contextlib.contextmanager
def serve(tmp: Path, redis_url: str, config: Path, token: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    settings = {
        "MERGEBOT_API_TOKEN": token,
        "MERGEBOT_DATA_DIR": str(tmp / "data"),
        "MERGEBOT_REDIS_URL": redis_url,
        "MERGEBOT_CONFIG": str(config),
        "MERGEBOT_HOST": "127.0.0.1",
        "MERGEBOT_PORT": str(port),
    }
    with mergebot_process("serve", tmp, settings) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


async def hold_leases(redis_url: str, repos: list[str]) -> None:
    """Hold every repo's integration lease: drains find it busy and leave the queue alone."""
    redis = connect(redis_url)
    try:
        for repo in repos:
            lease = Lease(redis, Keys(), repo, "main", "benchmark", 3600)
            assert await lease.acquire(), repo
    finally:
        await redis.aclose()


async def queued(redis_url: str, repos: list[str]) -> int:
    redis = connect(redis_url)
    try:
        return sum([int(await redis.hlen(Keys().items(repo, "main"))) for repo in repos])
    finally:
        await redis.aclose()


async def settled(pid: int, *, idle_share: float = 0.05, window: float = 0.5) -> float:
    """Wait until the server has settled: its CPU use under `idle_share` of a core over a window
    (at most 60 s). Queued is not idle: the notifier and the follow-ups reader still work through
    the events, on the event loop the API shares. Measured during that, the queue API would
    measure the backlog, not the API. Returns the seconds waited."""
    began = time.perf_counter()
    while time.perf_counter() - began < 60:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)
        after = cpu_seconds(pid)
        if before is None or after is None or (after - before) / window < idle_share:
            break
    return time.perf_counter() - began


async def run(args: argparse.Namespace, tmp: Path, redis_url: str) -> None:
    repos = [f"bench/r{i:03d}" for i in range(args.repos)]
    per_repo = max(1, args.candidates // args.repos)
    began = time.perf_counter()
    shas = {repo: make_remote(tmp / f"{repo.replace('/', '_')}.git", per_repo) for repo in repos}
    shas[BIG] = make_remote(tmp / "big.git", args.big)
    total = sum(len(s) for s in shas.values())
    made = time.perf_counter() - began
    print(f"{len(shas)} remotes with {total} candidate branches in {made:.1f} s")
    config = tmp / "mergebot.toml"
    config.write_text(
        "".join(
            f'[repos."{repo}"]\nremote = "{tmp / (repo.replace("/", "_") + ".git")}"\n'
            if repo != BIG
            else f'[repos."{BIG}"]\nremote = "{tmp / "big.git"}"\n'
            for repo in shas
        )
    )
    await hold_leases(redis_url, list(shas))
    # Interleave repos (round robin over their candidates), as independent teams would post.
    events: list[dict[str, Any]] = []
    lists = {repo: sorted(branches.items()) for repo, branches in shas.items()}
    for i in range(max(len(v) for v in lists.values())):
        for repo, branches in lists.items():
            if i < len(branches):
                events += candidate_events(repo, *branches[i])
    bodies = [events[i : i + 50] for i in range(0, len(events), 50)]
    token = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {token}"}
    with serve(tmp, redis_url, config, token) as (base, pid):
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
            await wait_until_up(session, base)

            def post(body: list[dict[str, Any]]) -> Any:
                async def call() -> None:
                    async with session.post(f"{base}/events", json=body, headers=auth) as resp:
                        assert resp.status == 201, (resp.status, await resp.text())

                return call

            posting = Clock("post the events (baseline)")
            started = time.perf_counter()
            await phase(posting, len(events), [post(b) for b in bodies], 8)
            post_s = time.perf_counter() - started
            deadline = started + max(args.timeout, 30 * post_s)
            done = 0
            while time.perf_counter() < deadline:
                done = await queued(redis_url, list(shas))
                if done >= total:
                    break
                await asyncio.sleep(0.2)
            queue_s = time.perf_counter() - started
            now_mb, peak_mb = rss_mb(pid)
            settle_s = await settled(pid)
            health, queue_api = (
                Clock("GET /healthz (baseline)"),
                Clock(f"GET queue API of a {args.big}-candidate repo"),
            )

            async def get(url: str, clock: Clock) -> None:
                with clock.op():
                    async with session.get(url) as resp:
                        assert resp.status == 200, resp.status
                        await resp.read()

            for _ in range(args.rounds):
                for _ in range(20):
                    with health.span(1):
                        await get(f"{base}/healthz", health)
                for _ in range(20):
                    with queue_api.span(1):
                        await get(f"{base}/api/repos/{BIG}/queue", queue_api)
    print(
        f"\n{total} candidates over {len(shas)} repos ({len(events)} events): "
        f"posted in {post_s:.1f} s ({len(events) / post_s:,.0f} events/s); "
        f"{done} queued after {queue_s:.1f} s = {queue_s / post_s:.1f}x the time to post "
        f"(target <= 10x){'' if done >= total else '  -- NOT ALL QUEUED'}"
    )
    print(
        f"mergebot serve resident memory: {now_mb:.0f} MB now, {peak_mb:.0f} MB peak "
        "(target < 200 MB)"
    )
    print(
        f"the server settled {settle_s:.1f} s after the last candidate was queued (the work "
        "that follows queueing, such as notifications, done)"
    )
    h = health.timing()
    report("queue API against a health round trip", [(h, None), (queue_api.timing(), h)], "call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10,000 + 1,000 candidates, 100 repos")
    parser.add_argument("--candidates", type=int, default=None)
    parser.add_argument("--repos", type=int, default=None)
    parser.add_argument("--big", type=int, default=None, help="candidates of the big repo")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for queued")
    args = parser.parse_args()
    full = {"candidates": 10_000, "repos": 100, "big": 1_000}
    small = {"candidates": 2_000, "repos": 20, "big": 300}
    for name, value in (full if args.full else small).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    run_in_scratch(run, args)


if __name__ == "__main__":
    main()
