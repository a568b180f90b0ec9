"""aiohttp application factory. Route modules register themselves through `setup(app)`."""

from __future__ import annotations

from aiohttp import web

from mergebot.runtime import Runtime
from mergebot.modules import optional_import
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
        module = optional_import(name)
        if module is not None:
            module.setup(app)
    return app
