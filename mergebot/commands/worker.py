"""`mergebot worker`: only the background services (processor, integrator, notifications)."""

from __future__ import annotations

import argparse

from mergebot.commands.serve import Wiring, run_server

HELP = "run only the background worker (processor, integrator, notifications); no HTTP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The worker listens on nothing, so it takes no options of its own."""


def run(args: argparse.Namespace, wiring: Wiring) -> int:
    return run_server(args, wiring, web_tier=False, worker=True)
