"""aiohttp application factory. Route modules register themselves through `setup(app)`."""

from __future__ import annotations

import importlib

from aiohttp import web

from mergebot.bootstrap import Runtime
from mergebot.web import metrics

RUNTIME = web.AppKey("runtime", Runtime)

# Each module has `setup(app: web.Application) -> None`; missing ones are skipped.
ROUTE_MODULES = (
    "mergebot.web.health",
    "mergebot.web.events_api",
    "mergebot.github.webhook",
    "mergebot.web.dashboard",
    "mergebot.web.followups_api",
    "mergebot.web.notify_api",
    "mergebot.web.queue_api",
)

MAX_BODY_BYTES = 25 * 1024 * 1024


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    metrics.install(app)  # first, so every route module can count into `app[metrics.METRICS]`
    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.setup(app)
    return app
