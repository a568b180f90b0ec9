"""POST /events end to end: requests per second on a local mergebot, against GET /healthz.

    python bench/events_api.py [--requests N] [--concurrency C] [--batch B]

Starts `python -m mergebot web` on 127.0.0.1 (its own embedded Redis under a temporary data
dir), then sends, with C requests in flight, in R interleaved rounds (so every phase sees the
same background load):
- GET /healthz N times (the baseline: aiohttp, routing and the metrics middleware, no Redis);
- POST /events N times with one new event each (auth, strict validation, the idempotent append);
- the same N events again (every one a duplicate: validated, found, nothing written);
- POST /events N/B times with B new events each (events per second is the figure there).
Every answer is checked (200 / 201, `duplicate` as expected) and the stored count at the end.
Client and server share the machine: on 2 cores they compete for CPU, as they would in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from _common import Clock, Timing, machine, mergebot_process, raw_events, report

from mergebot.store.connection import connect
from mergebot.store.eventlog import EventLog
from mergebot.store.keys import Keys

START_TIMEOUT = 30.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(token: str) -> Iterator[tuple[str, Path]]:
    """`mergebot web` in a child process with its own embedded Redis under a temporary dir."""
    with tempfile.TemporaryDirectory(prefix="mergebot-bench-") as tmp:
        port = free_port()
        settings = {
            "MERGEBOT_API_TOKEN": token,
            "MERGEBOT_DATA_DIR": str(Path(tmp) / "data"),
            "MERGEBOT_HOST": "127.0.0.1",
            "MERGEBOT_PORT": str(port),
        }
        with mergebot_process("web", Path(tmp), settings):
            yield f"http://127.0.0.1:{port}", Path(tmp) / "data"


async def wait_until_up(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.get(f"{base}/readyz") as resp:
                if resp.status == 200:
                    return
        if time.monotonic() > deadline:
            raise SystemExit(f"mergebot did not answer on {base} within {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.1)


async def phase(
    clock: Clock, items: int, calls: list[Callable[[], Awaitable[None]]], concurrency: int
) -> None:
    """Run the calls with `concurrency` in flight; latency is measured per request."""
    queue = iter(calls)

    async def worker() -> None:
        for call in queue:
            with clock.op():
                await call()

    with clock.span(items):
        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run(
    base: str, data_dir: Path, token: str, n: int, concurrency: int, batch: int, rounds: int
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    per_round = max(1, n // rounds)
    batches_per_round = max(1, per_round // batch)
    health = Clock("GET /healthz (baseline)")
    fresh = Clock("POST /events, 1 new event each")
    again = Clock("POST /events, 1 duplicate event each")
    bulk = Clock(f"POST /events, {batch} new events each (requests)")
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        await wait_until_up(session, base)

        async def get_health() -> None:
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200, resp.status
                await resp.read()

        def post(body: Any, duplicate: bool) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                async with session.post(f"{base}/events", json=body, headers=auth) as resp:
                    answer = await resp.json()
                    assert resp.status == 201, (resp.status, answer)
                    assert all(s["duplicate"] is duplicate for s in answer["stored"]), answer

            return call

        # Warm up both paths (imports, script cache, connection pools).
        await phase(Clock("warm-up"), 50, [get_health] * 50, concurrency)
        warm = raw_events(50, tag="warm")
        await phase(Clock("warm-up"), 50, [post(ev, False) for ev in warm], concurrency)

        for r in range(rounds):
            single = raw_events(per_round, tag=f"s{r}-")
            batches = [raw_events(batch, tag=f"b{r}-{i}-") for i in range(batches_per_round)]
            await phase(health, per_round, [get_health] * per_round, concurrency)
            await phase(fresh, per_round, [post(ev, False) for ev in single], concurrency)
            await phase(again, per_round, [post(ev, True) for ev in single], concurrency)
            await phase(bulk, len(batches), [post(b, False) for b in batches], concurrency)

    url = (data_dir / "redis" / "server.url").read_text().strip()
    redis = connect(url)
    try:
        stored = await EventLog(redis, Keys()).length()
    finally:
        await redis.aclose()
    expected = len(warm) + rounds * (per_round + batch * batches_per_round)
    assert stored == expected, f"{stored} events stored, expected {expected}"

    h, b = health.timing(), bulk.timing()
    events = Timing(
        f"POST /events, {batch} new events each (events)", b.ops, b.items * batch,
        b.seconds, b.latencies,
    )  # fmt: skip
    report(
        f"HTTP on 127.0.0.1, {concurrency} requests in flight, {rounds} interleaved rounds",
        [(h, None), (fresh.timing(), h), (again.timing(), h), (b, h), (events, h)],
        "item",
    )
    print(f"\nstored {stored} events, as expected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50, help="events per batched request")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    token = secrets.token_urlsafe(24)
    started = time.perf_counter()
    with server(token) as (base, data_dir):
        asyncio.run(
            run(base, data_dir, token, args.requests, args.concurrency, args.batch, args.rounds)
        )
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
