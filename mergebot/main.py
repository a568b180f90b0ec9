"""The composition root: the one module that knows every part of mergebot and puts them together.

It imports every route, background service and subcommand explicitly, and lists them here in the
order they are used: routes in the order they are added to the web application, services in the
order a worker starts them, subcommands in the order of `mergebot --help`. Nothing in mergebot
imports this module (an import-linter contract keeps it so); it is the program's entry point
(`mergebot = "mergebot.main:main"`), and tests import it to build the same application.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from mergebot import __version__
from mergebot.commands import (
    cancel,
    compact,
    config,
    cutover,
    dead_letters,
    demo,
    emit,
    events,
    followups,
    freeze,
    ingest_event,
    priority,
    replay,
    resume,
    serve,
    status,
    unfreeze,
    worker,
)
from mergebot.commands import web as web_command
from mergebot.commands.serve import Wiring
from mergebot.cutover_facts import cutover_service
from mergebot.followups_service import followups_service
from mergebot.github.command_worker import command_service
from mergebot.github.reconcile import reconcile_service
from mergebot.github.reporter import reporter_service
from mergebot.integrator import integrator_service, run_once
from mergebot.notify.delivery import delivery_service
from mergebot.processor import processor_service
from mergebot.runtime import Runtime
from mergebot.services import BackgroundService
from mergebot.web import app as web_app
from mergebot.web import (
    controls_api,
    dashboard,
    events_api,
    followup_pages,
    followups_api,
    github_webhook,
    health,
    notify_api,
    queue_api,
)

# The web tier's routes, in the order they are added (metrics are installed before all of them).
ROUTES: tuple[web_app.RouteSetup, ...] = (
    health.setup,
    events_api.setup,
    github_webhook.setup,
    dashboard.setup,
    followup_pages.setup,
    followups_api.setup,
    notify_api.setup,
    queue_api.setup,
    controls_api.setup,
)

# The worker's services, in start order. The integrator's comes first: it sets
# `Runtime.ready_hook` (a `mergebot.handoff.ReadyHook`), which the processor announces queued
# work to from its first batch on.
SERVICES: tuple[BackgroundService, ...] = (
    integrator_service,
    processor_service,
    followups_service,
    delivery_service,
    reconcile_service,
    reporter_service,
    command_service,
    cutover_service,
)


def create_app(runtime: Runtime) -> web.Application:
    """The web application of `runtime` with every route of mergebot."""
    return web_app.create_app(runtime, ROUTES)


def background_services() -> list[BackgroundService]:
    """The worker's services, in start order."""
    return list(SERVICES)


WIRING = Wiring(create_app=create_app, services=SERVICES)


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, its options and what runs it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# The subcommands, in the order of `mergebot --help`.
COMMANDS: dict[str, Command] = {
    "serve": Command(serve.HELP, serve.add_arguments, partial(serve.run, wiring=WIRING)),
    "web": Command(
        web_command.HELP, web_command.add_arguments, partial(web_command.run, wiring=WIRING)
    ),
    "worker": Command(worker.HELP, worker.add_arguments, partial(worker.run, wiring=WIRING)),
    "ingest-event": Command(
        ingest_event.HELP, ingest_event.add_arguments, partial(ingest_event.run, integrate=run_once)
    ),
    "status": Command(status.HELP, status.add_arguments, status.run),
    "events": Command(events.HELP, events.add_arguments, events.run),
    "emit": Command(emit.HELP, emit.add_arguments, emit.run),
    "resume": Command(resume.HELP, resume.add_arguments, resume.run),
    "cancel": Command(cancel.HELP, cancel.add_arguments, cancel.run),
    "priority": Command(priority.HELP, priority.add_arguments, priority.run),
    "freeze": Command(freeze.HELP, freeze.add_arguments, freeze.run),
    "unfreeze": Command(unfreeze.HELP, unfreeze.add_arguments, unfreeze.run),
    "replay": Command(replay.HELP, replay.add_arguments, replay.run),
    "compact": Command(compact.HELP, compact.add_arguments, compact.run),
    "followups": Command(followups.HELP, followups.add_arguments, followups.run),
    "dead-letters": Command(dead_letters.HELP, dead_letters.add_arguments, dead_letters.run),
    "cutover": Command(cutover.HELP, cutover.add_arguments, cutover.run),
    "config": Command(config.HELP, config.add_arguments, config.run),
    "demo": Command(demo.HELP, demo.add_arguments, partial(demo.run, wiring=WIRING)),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mergebot", description="A merge queue bot.")
    parser.add_argument("--version", action="version", version=f"mergebot {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        found = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(found)
        found.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
