"""`mergebot config check [PATH]`: validate a server file or a repo's .github/mergebot.toml.

Every problem is listed with file, key and reason (exit 1); a valid file prints the effective
configuration as JSON (exit 0). The MERGEBOT_* environment is checked too, since a bad variable
stops the server just as a bad file does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mergebot.config import ConfigError, ConfigProblem, check_file, load_settings

HELP = "check configuration: `mergebot config check [PATH]`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate a mergebot.toml or .github/mergebot.toml; print the effective config",
        description="Validate a server file (mergebot.toml) or a repo file "
        "(.github/mergebot.toml). Default PATH: MERGEBOT_CONFIG, else ./mergebot.toml.",
    )
    check.add_argument("path", nargs="?", type=Path, help="the file to check")


def default_path() -> Path:
    configured = os.environ.get("MERGEBOT_CONFIG")
    return Path(configured) if configured else Path("mergebot.toml")


def check(path: Path) -> int:
    problems: list[ConfigProblem] = []
    try:
        load_settings()
    except ConfigError as exc:
        problems += exc.problems
    effective = None
    try:
        effective = check_file(path)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        print(f"{path}: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    # The heading goes to stderr so stdout is the JSON alone (`> effective.json`); flushed in
    # order so that a terminal or `2>&1` shows the heading before the JSON, never inside it.
    sys.stdout.flush()
    print(f"{path}: valid; the effective configuration:", file=sys.stderr, flush=True)
    print(json.dumps(effective, indent=2), flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.config_command == "check":
        return check(args.path or default_path())
    raise AssertionError(args.config_command)  # argparse allows only the actions above
