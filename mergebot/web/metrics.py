"""Prometheus metrics of one web app: counters live in a registry per app, never in globals.

Besides the request and intake counters the app counts itself, the registry holds a
`QueueCollector`: the queue's metrics (`mergebot.telemetry`), brought up to date from Redis just
before each scrape — the stored state for gauges, this process's fold of the event log for
outcome counters and histograms — so a replica that never ran an integrator reports them too.

Refusals are counted as carefully as acceptances (SPEC §12: a refused event that nobody sees is how
a whole chain silently never becomes ready). Label values come from closed sets only — an unknown
event name from the outside is counted as "unknown", so a hostile client cannot grow the registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from mergebot.events import EVENT_MODELS
from mergebot.runtime import Runtime
from mergebot.telemetry import CATALOGUE, Kind, MetricSpec, Sample
from mergebot.telemetry_state import LogFold, read_state

log = logging.getLogger("mergebot.metrics")

UNKNOWN = "unknown"


def event_label(name: object) -> str:
    """A label value for an event name that may come from untrusted input."""
    return name if isinstance(name, str) and name in EVENT_MODELS else UNKNOWN


# The catalogue's metrics the app counts itself (the rest come from the QueueCollector).
APP_COUNTED = frozenset(
    {
        "mergebot_events_accepted",
        "mergebot_events_duplicate",
        "mergebot_events_refused",
        "mergebot_http_requests",
        "mergebot_requests_shed",
    }
)


def _family(spec: MetricSpec) -> Metric:
    labels = list(spec.labels)
    match spec.kind:
        case Kind.COUNTER:
            return CounterMetricFamily(spec.name, spec.help, labels=labels)
        case Kind.GAUGE:
            return GaugeMetricFamily(spec.name, spec.help, labels=labels)
        case Kind.HISTOGRAM:
            return HistogramMetricFamily(spec.name, spec.help, labels=labels)


class QueueCollector(Collector):
    """The queue's metrics as of the last `refresh` (one per app, in the app's registry)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.samples: list[Sample] = []
        self.log = LogFold()
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the stored state and fold the event log's new entries (one scrape at a time:
        two concurrent folds would count an entry twice). Redis away: the queue's gauges are
        left out of this scrape rather than shown stale; the fold keeps its place."""
        async with self._lock:
            try:
                await self.log.catch_up(self.runtime)
                self.samples = await read_state(self.runtime)
            except (RedisError, OSError) as exc:
                log.warning("metrics_state_unavailable error=%s", type(exc).__name__)
                self.samples = []

    def collect(self) -> Iterator[Metric]:
        families = {s.name: _family(s) for s in CATALOGUE if s.name not in APP_COUNTED}
        for sample in self.samples:
            family = families[sample.name]
            if isinstance(family, CounterMetricFamily | GaugeMetricFamily):
                family.add_metric(list(sample.labels), sample.value)
        fold = self.log.fold
        for (name, labels), value in sorted(fold.counters.items()):
            family = families[name]
            assert isinstance(family, CounterMetricFamily)
            family.add_metric(list(labels), value)
        for (name, labels), histogram in sorted(fold.histograms.items()):
            family = families[name]
            assert isinstance(family, HistogramMetricFamily)
            family.add_metric(list(labels), histogram.cumulative(), histogram.total)
        yield from families.values()


class Metrics:
    """The counters of one app; route modules reach it through `app[METRICS]`."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue = QueueCollector(runtime)
        self.registry.register(self.queue)
        self.events_accepted = Counter(
            "mergebot_events_accepted",
            "Events stored in the event log (new, not duplicates), by source and event name.",
            ["source", "name"],
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            "mergebot_events_duplicate",
            "Events whose id was already stored with the same payload (stored once).",
            ["source", "name"],
            registry=self.registry,
        )
        self.events_refused = Counter(
            "mergebot_events_refused",
            "Events or requests refused, by source, event name, HTTP status and reason.",
            ["source", "name", "status", "reason"],
            registry=self.registry,
        )
        self._stored: dict[tuple[bool, str, str], Counter] = {}
        self._answered: dict[tuple[str, str, int], Counter] = {}
        self.http_requests = Counter(
            "mergebot_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def stored(self, source: str, name: str, *, duplicate: bool) -> None:
        """Count one stored event (new or duplicate). The labelled child is looked up once per
        (counter, labels): `labels()` takes a lock and checks its arguments on every call."""
        key = (duplicate, source, name)
        child = self._stored.get(key)
        if child is None:
            counter = self.events_duplicate if duplicate else self.events_accepted
            child = self._stored[key] = counter.labels(source, name)
        child.inc()

    def answered(self, method: str, route: str, status: int) -> None:
        """Count one HTTP answer (the labelled child looked up once, as in `stored`)."""
        key = (method, route, status)
        child = self._answered.get(key)
        if child is None:
            child = self._answered[key] = self.http_requests.labels(method, route, str(status))
        child.inc()

    def refused(self, source: str, names: list[str], status: int, reason: str) -> None:
        """Count a refusal once per event of the request (once when no event could be read)."""
        for name in names or [UNKNOWN]:
            self.events_refused.labels(source, name, str(status), reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(request: web.Request) -> str:
    return request.method if request.method in _METHODS else "OTHER"


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "<unmatched>"


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.answered(_method_label(request), _route_label(request), exc.status)
        raise
    except Exception:
        metrics.answered(_method_label(request), _route_label(request), 500)
        raise
    metrics.answered(_method_label(request), _route_label(request), response.status)
    return response


async def metrics_view(request: web.Request) -> web.Response:
    await request.app[METRICS].queue.refresh()
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application, runtime: Runtime) -> Metrics:
    """Give `app` its own registry and the request counter; called by `create_app` first."""
    metrics = Metrics(runtime)
    app[METRICS] = metrics
    app.middlewares.append(count_requests)
    app.router.add_get("/metrics", metrics_view)
    return metrics
