"""The `mergebot` command line: one module per subcommand under `mergebot.commands`.

Each command module exposes `HELP`, `add_arguments(parser)` and `run(args) -> int`; this file only
dispatches, so commands stay small and independent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from mergebot import __version__
from mergebot.modules import optional_import

# The order is the order of `mergebot --help`.
COMMANDS = (
    "serve",
    "web",
    "worker",
    "ingest-event",
    "status",
    "events",
    "emit",
    "resume",
    "cancel",
    "priority",
    "replay",
    "followups",
    "dead-letters",
    "config",
    "demo",
)


def _load(name: str) -> ModuleType | None:
    return optional_import(f"mergebot.commands.{name.replace('-', '_')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mergebot", description="A merge queue bot.")
    parser.add_argument("--version", action="version", version=f"mergebot {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
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
