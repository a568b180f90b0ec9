"""aiohttp application factory: the route modules' `setup(app)` functions are given by the
composition root (`mergebot.main`), which lists every one of them."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web

from mergebot.runtime import Runtime
from mergebot.web import metrics, shedding

RUNTIME = web.AppKey("runtime", Runtime)

# A route module's `setup(app)`: it adds its routes (and what they keep) to `app`.
RouteSetup = Callable[[web.Application], None]

MAX_BODY_BYTES = 25 * 1024 * 1024


def create_app(runtime: Runtime, routes: Iterable[RouteSetup]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    metrics.install(app, runtime)  # first: every route module counts into `app[metrics.METRICS]`
    shedding.install(app, runtime.settings.max_ingest_in_flight)
    for setup in routes:
        setup(app)
    return app
