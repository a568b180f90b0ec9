"""`mergebot demo`: watch mergebot land one branch and block a conflicting one, with nothing set up.

It creates a throw-away git repository, starts mergebot on it (embedded Redis, a free port on
127.0.0.1), feeds it the canonical events, tells what happens, then stops everything and removes
the directory (`--keep` keeps it to look around; so does `--dir`). Exit 0 when the story ends as
expected.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from mergebot.commands.demo_story import DemoError, run_demo
from mergebot.commands.serve import Wiring
from mergebot.store.embedded import EmbeddedRedisError

HELP = "run a self-contained walkthrough: one branch lands, a conflicting one is blocked"

# Loggers whose INFO lines would drown the story (shown again with `mergebot -v demo`).
_CHATTY = ("mergebot", "aiohttp.access")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", action="store_true", help="keep the demo directory afterwards")
    parser.add_argument(
        "--dir",
        type=Path,
        help="run in this new (or empty) directory instead of a temporary one (it is kept)",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the story, keep the server (and its dashboard) up until Ctrl-C",
    )
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="give up after this many seconds (default 90)"
    )


def _say(line: str) -> None:
    print(line, flush=True)


def _root(args: argparse.Namespace) -> Path:
    if args.dir is None:
        return Path(tempfile.mkdtemp(prefix="mergebot-demo-"))
    root: Path = args.dir.resolve()
    if root.exists() and any(root.iterdir()):
        raise DemoError(f"{root} is not empty; give a new or empty directory")
    root.mkdir(parents=True, exist_ok=True)
    return root


def run(args: argparse.Namespace, wiring: Wiring) -> int:
    try:
        root = _root(args)
    except (DemoError, OSError) as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 2
    levels = {name: logging.getLogger(name).level for name in _CHATTY}
    if not getattr(args, "verbose", False):
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
    code = 1
    try:
        outcome = asyncio.run(
            run_demo(root, _say, wiring, seconds=args.timeout, keep_serving=args.serve)
        )
        _say("")
        if outcome.ok:
            _say(
                f"Done: {outcome.landed.slug} landed on main ({outcome.main_before[:7]} -> "
                f"{outcome.main_after[:7]}, a merge commit); {outcome.blocked.slug} is blocked "
                f"on a conflict in {', '.join(outcome.conflict_files)} and main stayed green."
            )
            code = 0
        else:
            print("mergebot: the demo did not end as expected (see above)", file=sys.stderr)
    except DemoError as exc:
        print(f"mergebot: demo failed: {exc}", file=sys.stderr)
    except EmbeddedRedisError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if args.keep or args.dir is not None:
            _say(f"Kept {root} (mergebot.toml, data/, the repository widgets.git).")
        else:
            shutil.rmtree(root, ignore_errors=True)
            _say(f"Removed {root}.")
    return code
