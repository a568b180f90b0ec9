"""`mergebot serve`: the web tier and the worker in one process (the embedded default).

`mergebot web` and `mergebot worker` run the two halves apart (for scaling out); all three share
`serve()` and `run_server()` here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError

from mergebot.collector import collector_schedule
from mergebot.commands.support import CommandError, run_job
from mergebot.config import Settings, load_settings
from mergebot.reload import reload_server_config
from mergebot.runtime import Runtime, open_runtime
from mergebot.sandbox import SandboxError, isolate_checks
from mergebot.services import BackgroundService, supervise

HELP = "run the web server and the worker in one process"
log = logging.getLogger("mergebot.serve")


@dataclass(frozen=True)
class Wiring:
    """What the composition root (`mergebot.main`) hands the commands that run mergebot: how to
    build the web application, and the worker's background services in their start order."""

    create_app: Callable[[Runtime], web.Application]
    services: Sequence[BackgroundService]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser)


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (MERGEBOT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (MERGEBOT_PORT, default 8080)")


async def serve(
    runtime: Runtime,
    wiring: Wiring,
    *,
    web_tier: bool,
    worker: bool,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or `stop` is set by the caller, as `demo` does), then stop
    accepting requests and let services finish. SIGHUP re-reads the server file
    (`mergebot.reload`)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_server_config, runtime)
    runner: web.AppRunner | None = None
    try:
        if web_tier:
            # No access log line per request: at ingest rates it costs as much as the request
            # (requests are counted in mergebot_http_requests_total; refusals are logged).
            runner = web.AppRunner(
                wiring.create_app(runtime), handle_signals=False, access_log=None
            )
            await runner.setup()
            settings = runtime.settings
            site = web.TCPSite(runner, settings.host, settings.port)
            await site.start()
            log.info("server_started url=http://%s:%s", settings.host, settings.port)
        services = wiring.services if worker else ()
        if worker:
            log.info("worker_started services=%d", len(services))
        await supervise(runtime, services, stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("shutdown_complete")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
        if v is not None
    }
    return load_settings(**overrides)


async def _main(args: argparse.Namespace, wiring: Wiring, *, web_tier: bool, worker: bool) -> int:
    settings = settings_from(args)
    try:
        isolate_checks(settings)
    except SandboxError as exc:
        raise CommandError(str(exc)) from None
    async with open_runtime(settings, server=True) as runtime:
        try:
            await runtime.redis.ping()
        except (RedisError, OSError) as exc:
            # Keep running: Redis may come up later; /readyz says 503 and /events refuses till then.
            log.warning("redis_unreachable_at_start error=%s", type(exc).__name__)
        # What is alive now (modules, classes, validators, the runtime), and later what survives
        # a full collection, is kept out of the collector's reach (mergebot.collector).
        async with collector_schedule(settings.gc_deep_collection_seconds):
            await serve(runtime, wiring, web_tier=web_tier, worker=worker)
    return 0


def run_server(args: argparse.Namespace, wiring: Wiring, *, web_tier: bool, worker: bool) -> int:
    try:
        return run_job(_main(args, wiring, web_tier=web_tier, worker=worker), doing="start")
    except CommandError as exc:
        return exc.exit()


def run(args: argparse.Namespace, wiring: Wiring) -> int:
    return run_server(args, wiring, web_tier=True, worker=True)
