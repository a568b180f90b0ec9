"""Prometheus metrics of one web app: counters live in a registry per app, never in globals.

Refusals are counted as carefully as acceptances (SPEC §12: a refused event that nobody sees is how
a whole chain silently never becomes ready). Label values come from closed sets only — an unknown
event name from the outside is counted as "unknown", so a hostile client cannot grow the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from mergebot.events import EVENT_MODELS

UNKNOWN = "unknown"


def event_label(name: object) -> str:
    """A label value for an event name that may come from untrusted input."""
    return name if isinstance(name, str) and name in EVENT_MODELS else UNKNOWN


class Metrics:
    """The counters of one app; route modules reach it through `app[METRICS]`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.http_requests = Counter(
            "mergebot_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )

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
    counter = request.app[METRICS].http_requests
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        counter.labels(_method_label(request), _route_label(request), str(exc.status)).inc()
        raise
    except Exception:
        counter.labels(_method_label(request), _route_label(request), "500").inc()
        raise
    counter.labels(_method_label(request), _route_label(request), str(response.status)).inc()
    return response


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application) -> Metrics:
    """Give `app` its own registry and the request counter; called by `create_app` first."""
    metrics = Metrics()
    app[METRICS] = metrics
    app.middlewares.append(count_requests)
    app.router.add_get("/metrics", metrics_view)
    return metrics
