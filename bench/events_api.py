"""POST /events end to end: requests per second on a local mergebot, against GET /healthz and
against a bare aiohttp app that checks the token and does one XADD.

    python bench/events_api.py [--requests N] [--concurrency C] [--batch B] [--overload S]

Starts `python -m mergebot web` on 127.0.0.1 (its own embedded Redis under a temporary data
dir) and `bench/bare_ingest.py` on the same Redis, then sends, with C requests in flight, in R
interleaved rounds (so every phase sees the same background load):
- GET /healthz N times (aiohttp, routing and the metrics middleware, no Redis);
- POST /events to the bare app N times, one event each (the ingest baseline: the target is
  mergebot at 0.7x its rate or better, i.e. a cost of 1.43x or less);
- POST /events N times with one new event each (auth, strict validation, the idempotent append);
- the same N events again (every one a duplicate: validated, found, nothing written);
- POST /events N/B times with B new events each (events per second is the figure there).
Every answer is checked (200 / 201, `duplicate` as expected) and the stored count at the end.
Then, open loop for S seconds (default 3): new events, one per request, sent on a fixed
schedule at twice the rate mergebot reached above, whatever the answers, over plain keep-alive
connections (latency counted from the scheduled send time), by `bench/open_loop.py` in a process
of its own. Reported: how many were accepted and refused (503, load shedding), their latency
percentiles (targets: refused within 50 ms, accepted p99 under 200 ms), and the client's own
lag, so that a client that could not keep up is not mistaken for a slow server. Client and
server share the machine: on 2 cores they compete for CPU, as they would in CI.

Fair to the baseline: both servers run aiohttp's default server (AppRunner and TCPSite) with no
access log, on the same Redis, answered by the same client. `--max-in-flight N` starts mergebot
with another MERGEBOT_MAX_INGEST_IN_FLIGHT (to see what the bound does under overload).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
def server(token: str, max_in_flight: int | None = None) -> Iterator[tuple[str, Path, int]]:
    """`mergebot web` in a child process with its own embedded Redis under a temporary dir."""
    with tempfile.TemporaryDirectory(prefix="mergebot-bench-") as tmp:
        port = free_port()
        settings = {
            "MERGEBOT_API_TOKEN": token,
            "MERGEBOT_DATA_DIR": str(Path(tmp) / "data"),
            "MERGEBOT_HOST": "127.0.0.1",
            "MERGEBOT_PORT": str(port),
        }
        if max_in_flight is not None:
            settings["MERGEBOT_MAX_INGEST_IN_FLIGHT"] = str(max_in_flight)
        with mergebot_process("web", Path(tmp), settings) as proc:
            yield f"http://127.0.0.1:{port}", Path(tmp) / "data", proc.pid


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


@contextlib.contextmanager
def bare_app(redis_url: str, token: str) -> Iterator[tuple[str, int]]:
    """`bench/bare_ingest.py` in a child process; stopped at the end."""
    port = free_port()
    script = Path(__file__).with_name("bare_ingest.py")
    # `--token=…`: a token may start with "-", which argparse would take for an option.
    args = ["--port", str(port), "--redis-url", redis_url, f"--token={token}"]
    proc = subprocess.Popen([sys.executable, str(script), *args])
    try:
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def wait_for_bare(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with session.post(f"{base}/events") as resp:
                if resp.status == 401:
                    return
        if time.monotonic() > deadline:
            raise SystemExit(f"the bare app did not answer on {base}")
        await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux `/proc`; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU time a server process spent during the phases measured with it: on a shared machine
    its cost per request is a steadier figure than requests per second (Redis not counted)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seconds: float | None = 0.0
        self.requests = 0

    @contextlib.asynccontextmanager
    async def during(self, requests: int) -> AsyncIterator[None]:
        before = cpu_seconds(self.pid)
        yield
        after = cpu_seconds(self.pid)
        if before is None or after is None or self.seconds is None:
            self.seconds = None
        else:
            self.seconds += after - before
            self.requests += requests

    @property
    def per_request_us(self) -> float | None:
        if self.seconds is None or not self.requests:
            return None
        return 1e6 * self.seconds / self.requests


async def run(
    base: str, bare: str, token: str, args: argparse.Namespace, redis_url: str,
    pids: tuple[int, int],
) -> float:  # fmt: skip
    """The closed-loop phases; the rate mergebot reached with one new event per request."""
    n, concurrency, batch, rounds = args.requests, args.concurrency, args.batch, args.rounds
    auth = {"Authorization": f"Bearer {token}"}
    per_round = max(1, n // rounds)
    batches_per_round = max(1, per_round // batch)
    health = Clock("GET /healthz (baseline)")
    bare_clock = Clock("bare aiohttp + XADD, 1 event each (baseline)")
    fresh = Clock("POST /events, 1 new event each")
    again = Clock("POST /events, 1 duplicate event each")
    bulk = Clock(f"POST /events, {batch} new events each (requests)")
    mergebot_cpu, bare_cpu = ServerCpu(pids[0]), ServerCpu(pids[1])
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        await wait_until_up(session, base)
        await wait_for_bare(session, bare)

        async def get_health() -> None:
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200, resp.status
                await resp.read()

        def post(body: Any, duplicate: bool, to: str = base) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                async with session.post(f"{to}/events", json=body, headers=auth) as resp:
                    answer = await resp.json()
                    assert resp.status == 201, (resp.status, answer)
                    if to == base:
                        assert all(s["duplicate"] is duplicate for s in answer["stored"]), answer

            return call

        # Warm up every path (imports, script cache, connection pools).
        await phase(Clock("warm-up"), 50, [get_health] * 50, concurrency)
        warm = raw_events(50, tag="warm")
        await phase(Clock("warm-up"), 50, [post(ev, False) for ev in warm], concurrency)
        await phase(Clock("warm-up"), 50, [post(ev, False, bare) for ev in warm], concurrency)

        for r in range(rounds):
            single = raw_events(per_round, tag=f"s{r}-")
            batches = [raw_events(batch, tag=f"b{r}-{i}-") for i in range(batches_per_round)]
            await phase(health, per_round, [get_health] * per_round, concurrency)
            async with bare_cpu.during(per_round):
                await phase(
                    bare_clock, per_round, [post(ev, False, bare) for ev in single], concurrency
                )
            async with mergebot_cpu.during(per_round):
                await phase(fresh, per_round, [post(ev, False) for ev in single], concurrency)
            await phase(again, per_round, [post(ev, True) for ev in single], concurrency)
            await phase(bulk, len(batches), [post(b, False) for b in batches], concurrency)

    redis = connect(redis_url)
    try:
        stored = await EventLog(redis, Keys()).length()
    finally:
        await redis.aclose()
    expected = len(warm) + rounds * (per_round + batch * batches_per_round)
    assert stored == expected, f"{stored} events stored, expected {expected}"

    h, b, x, f = health.timing(), bulk.timing(), bare_clock.timing(), fresh.timing()
    events = Timing(
        f"POST /events, {batch} new events each (events)", b.ops, b.items * batch,
        b.seconds, b.latencies,
    )  # fmt: skip
    report(
        f"HTTP on 127.0.0.1, {concurrency} requests in flight, {rounds} interleaved rounds",
        [(h, None), (x, h), (f, h), (again.timing(), h), (b, h), (events, h)],
        "item",
    )
    report("against the bare app", [(x, None), (f, x), (again.timing(), x)], "item")
    share = f.items_per_second / x.items_per_second
    print(
        f"\nPOST /events, one new event per request: {share:.2f}x the bare app's rate "
        "(target >= 0.7x)"
    )
    mine, theirs = mergebot_cpu.per_request_us, bare_cpu.per_request_us
    if mine and theirs:  # None off Linux; 0 when a tiny run took less than a clock tick
        print(
            f"server CPU per request, one new event each: mergebot {mine:.0f} us, bare app "
            f"{theirs:.0f} us ({theirs / mine:.2f}x; Redis not counted)"
        )
    print(f"stored {stored} events, as expected")
    return f.items_per_second


def overload(base: str, token: str, rate: float, seconds: float) -> None:
    """Open loop at `rate` for `seconds`, from `bench/open_loop.py` in a process of its own."""
    script = Path(__file__).with_name("open_loop.py")
    args = ["--url", base, f"--token={token}", "--rate", f"{rate:.0f}", "--seconds", str(seconds)]
    subprocess.run([sys.executable, str(script), *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50, help="events per batched request")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--overload", type=float, default=3.0, help="open-loop seconds (0: none)")
    parser.add_argument(
        "--max-in-flight", type=int, default=None,
        help="MERGEBOT_MAX_INGEST_IN_FLIGHT of the server (default: its own default)",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"machine: {machine()}")
    token = secrets.token_urlsafe(24)
    started = time.perf_counter()
    with server(token, args.max_in_flight) as (base, data_dir, pid):
        url = wait_for_url(data_dir / "redis" / "server.url")
        with bare_app(url, token) as (bare, bare_pid):
            rate = asyncio.run(run(base, bare, token, args, url, (pid, bare_pid)))
        if args.overload > 0:
            overload(base, token, 2 * rate, args.overload)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


def wait_for_url(path: Path) -> str:
    """The embedded Redis URL `mergebot web` writes once its Redis is up."""
    deadline = time.monotonic() + START_TIMEOUT
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"mergebot did not start its Redis within {START_TIMEOUT:.0f} s")
        time.sleep(0.1)
    return path.read_text().strip()


if __name__ == "__main__":
    main()
