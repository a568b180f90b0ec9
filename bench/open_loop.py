"""Open-loop load on `POST /events`: new events, one per request, sent on a fixed schedule
whatever the answers; prints how many were accepted and refused and their latencies.

    python bench/open_loop.py --url URL --token T --rate R [--seconds S] [--connections C]

Started by `bench/events_api.py` in a process of its own, so the load generator carries nothing
of the closed-loop phases (their sessions, their heap). Latency is counted from the time a
request was scheduled, not from when it was sent: a server that falls behind cannot hide it by
slowing the client down (coordinated omission). The client is kept cheap per request, since on
two cores it competes with the server for CPU: requests are prebuilt bytes, each keep-alive
connection is an `asyncio.Protocol` that finds the end of an answer with `bytes.find` (no
coroutine per request), and the client's own lag (scheduled time to the moment it could send)
is printed beside the figures, so a client that could not keep up is seen as such.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import deque

from _common import raw_events

# Keep-alive connections: more than the server takes in flight, so the server, not the client,
# decides what is refused.
CONNECTIONS = 192
DRAIN_TIMEOUT = 30.0


class Client:
    """Keep-alive connections with one request in flight each; requests wait for a free one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int) -> None:
        self.loop = loop
        self.idle: deque[Connection] = deque()
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.outcomes: list[tuple[int, float]] = []
        self.total = total
        self.finished = asyncio.Event()

    def send(self, request: bytes, scheduled: float) -> None:
        if self.idle:
            self.idle.popleft().send(request, scheduled)
        else:
            self.waiting.append((request, scheduled))

    def answered(self, conn: Connection, status: int, scheduled: float) -> None:
        self.outcomes.append((status, self.loop.time() - scheduled))
        if len(self.outcomes) >= self.total:
            self.finished.set()
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.idle.append(conn)


class Connection(asyncio.Protocol):
    def __init__(self, client: Client) -> None:
        self.client = client
        self.buffer = bytearray()
        self.scheduled: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes, scheduled: float) -> None:
        assert self.transport is not None
        self.scheduled = scheduled
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17 : head.find(b"\r\n", at + 2)]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[: end + 4 + length]
        scheduled, self.scheduled = self.scheduled, None
        assert scheduled is not None
        self.client.answered(self, status, scheduled)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.scheduled is not None:  # counted as a failure (status 0); not replaced
            self.client.outcomes.append((0, self.client.loop.time() - self.scheduled))
            if len(self.client.outcomes) >= self.client.total:
                self.client.finished.set()


def request_bytes(host: str, port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST /events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def percentile_ms(values: list[float], q: float) -> str:
    return f"{1000 * values[min(len(values) - 1, int(q * len(values)))]:.1f}" if values else "-"


async def run(url: str, token: str, rate: float, seconds: float, connections: int) -> None:
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    requests = [
        request_bytes(host, port, token, json.dumps(ev).encode())
        for ev in raw_events(total, tag="overload-")
    ]
    client = Client(loop, total)
    for _ in range(connections):
        _transport, conn = await loop.create_connection(lambda: Connection(client), host, port)
        client.idle.append(conn)
    lags: list[float] = []
    start = loop.time() + 0.05
    for i, request in enumerate(requests):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0.0005:  # requests due within half a millisecond go out together
            await asyncio.sleep(delay)
        lags.append(max(0.0, loop.time() - scheduled))
        client.send(request, scheduled)
    sent_in = loop.time() - start
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.finished.wait(), DRAIN_TIMEOUT)
    for conn in client.idle:
        if conn.transport is not None:
            conn.transport.close()
    accepted = sorted(t for s, t in client.outcomes if s == 201)
    refused = sorted(t for s, t in client.outcomes if s == 503)
    other = sorted({s for s, _t in client.outcomes if s not in (201, 503)})
    missing = total - len(client.outcomes)
    lags.sort()
    print(
        f"\nopen loop at {rate:,.0f} requests/s (twice the rate reached above) for {seconds:.0f} s"
        f" ({total} requests, sent in {sent_in:.1f} s over {connections} connections,"
        " from a client process of its own):"
    )
    print(
        f"  accepted {len(accepted)}: p50 {percentile_ms(accepted, 0.5)} ms, "
        f"p99 {percentile_ms(accepted, 0.99)} ms (target p99 < 200 ms)"
    )
    print(
        f"  refused {len(refused)} (503, Retry-After): p50 {percentile_ms(refused, 0.5)} ms, "
        f"p99 {percentile_ms(refused, 0.99)} ms (target < 50 ms)"
    )
    print(
        f"  the client's own lag (scheduled to sent, included above): "
        f"p50 {percentile_ms(lags, 0.5)} ms, p99 {percentile_ms(lags, 0.99)} ms"
    )
    if other or missing:
        print(f"  other answers or failures: {len(client.outcomes) - len(accepted) - len(refused)}"
              f" {other}, unanswered after {DRAIN_TIMEOUT:.0f} s: {missing}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.token, args.rate, args.seconds, args.connections))


if __name__ == "__main__":
    main()
