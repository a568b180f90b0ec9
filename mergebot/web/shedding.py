"""Load shedding for the ingest endpoints (`POST /events`, `POST /webhook`).

Past the rate the server can store, queuing more requests only makes every one of them slow:
latency climbs to seconds for everyone and producers time out and retry, which adds load. So
the number of ingest requests in flight is bounded (`MERGEBOT_MAX_INGEST_IN_FLIGHT`); a request
beyond the bound is answered at once, before its body is read, with 503 and `Retry-After`, and
nothing of it is stored: a producer (or GitHub's redelivery) sends it again later. Accepted
requests keep the latency of a server working at its pace.

Shed requests are counted (`mergebot_requests_shed_total`, by path) and logged at WARNING at
most once per `LOG_EVERY_SECONDS`, with how many were shed since: a flood of refusals must not
become a flood of log lines, which would cost the time shedding saves.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from prometheus_client import Counter

from mergebot.web.metrics import METRICS, Handler

log = logging.getLogger("mergebot.web.shedding")

SHED_PATHS = frozenset({"/events", "/webhook"})
RETRY_AFTER_SECONDS = 1
LOG_EVERY_SECONDS = 10.0
# The answer to a shed request, serialized once: refusing must cost as little as possible.
_SHED_BODY = json.dumps(
    {"error": "the server is at capacity; nothing was stored, retry later"}
).encode()


class Shedder:
    """Counts ingest requests in flight and decides, per request, whether to take it."""

    def __init__(self, limit: int, counter: Counter) -> None:
        self.limit = limit
        self.in_flight = 0
        self.counter = counter
        self._unlogged = 0
        self._logged_at = float("-inf")

    def shed(self, path: str) -> web.Response:
        self.counter.labels(path).inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            log.warning(
                "requests_shed path=%s in_flight=%d limit=%d shed_since_last_log=%d",
                path, self.in_flight, self.limit, self._unlogged,
            )  # fmt: skip
            self._logged_at, self._unlogged = now, 0
        return web.Response(
            body=_SHED_BODY,
            status=503,
            content_type="application/json",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


SHEDDER = web.AppKey("shedder", Shedder)


@web.middleware
async def shed_load(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in SHED_PATHS:
        return await handler(request)
    shedder = request.app[SHEDDER]
    if shedder.in_flight >= shedder.limit:
        return shedder.shed(request.path)
    shedder.in_flight += 1
    try:
        return await handler(request)
    finally:
        shedder.in_flight -= 1


def install(app: web.Application, limit: int) -> Shedder:
    """Bound the ingest requests of `app` in flight; first in the middleware chain, so a shed
    request costs nothing else."""
    counter = Counter(
        "mergebot_requests_shed",
        "Ingest requests answered 503 at once because too many were in flight, by path.",
        ["path"],
        registry=app[METRICS].registry,
    )
    for path in sorted(SHED_PATHS):  # exported at 0 from the start, as every documented metric
        counter.labels(path)
    shedder = Shedder(limit, counter)
    app[SHEDDER] = shedder
    app.middlewares.insert(0, shed_load)
    return shedder
