"""`mergebot serve`: the web tier and the worker in one process (the embedded default)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from mergebot.bootstrap import Runtime, background_services, open_runtime
from mergebot.config import ConfigError, Settings
from mergebot.web.app import create_app

HELP = "run the web server and the worker in one process"
log = logging.getLogger("mergebot.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (MERGEBOT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (MERGEBOT_PORT, default 8080)")


async def serve(runtime: Runtime, *, web_tier: bool, worker: bool) -> None:
    """Run until SIGINT/SIGTERM, then stop accepting requests and let services finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    if web_tier:
        runner = web.AppRunner(create_app(runtime), handle_signals=False)
        await runner.setup()
        settings = runtime.settings
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("server_started url=http://%s:%s", settings.host, settings.port)
    services = background_services() if worker else []
    tasks = [asyncio.ensure_future(service(runtime, stop)) for service in services]
    try:
        await stop.wait()
        log.info("shutdown_requested")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if runner is not None:
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return Settings(**overrides)


async def _main(args: argparse.Namespace, *, web_tier: bool, worker: bool) -> int:
    async with open_runtime(settings_from(args)) as runtime:
        await serve(runtime, web_tier=web_tier, worker=worker)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args, web_tier=True, worker=True))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
