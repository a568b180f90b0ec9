"""`mergebot web`: only the HTTP tier (webhooks, the event API, dashboard), for scaling out."""

from __future__ import annotations

import argparse

from mergebot.commands.serve import Wiring, add_listen_arguments, run_server

HELP = "run only the web server (webhooks, event API, dashboard); pair with `mergebot worker`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listen_arguments(parser)


def run(args: argparse.Namespace, wiring: Wiring) -> int:
    return run_server(args, wiring, web_tier=True, worker=False)
