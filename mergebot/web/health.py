"""Liveness and readiness probes for orchestrators and the container HEALTHCHECK."""

from __future__ import annotations

from aiohttp import web
from redis.exceptions import RedisError

from mergebot import __version__
from mergebot.web.app import RUNTIME


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when Redis answers: without the event log nothing can be accepted."""
    runtime = request.app[RUNTIME]
    try:
        await runtime.redis.ping()
    except (RedisError, OSError) as exc:
        return web.json_response({"status": "unavailable", "redis": type(exc).__name__}, status=503)
    return web.json_response({"status": "ready", "redis": "ok"})


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
