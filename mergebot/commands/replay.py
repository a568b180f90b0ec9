"""`mergebot replay`: rebuild projection and queue from the event log; report (or fix) drift."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from redis.exceptions import RedisError

from mergebot.bootstrap import open_runtime
from mergebot.config import ConfigError, load_settings
from mergebot.ids import is_repo
from mergebot.rebuild import ReplayReport, replay
from mergebot.store.embedded import EmbeddedRedisError

HELP = "rebuild the readiness projection and queue from the event log and report differences"


def _repo(text: str) -> str:
    if not is_repo(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a repo name of the form owner/name")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", type=_repo, help="only this repo (owner/name)")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="replace the stored projection and queue with the rebuilt ones where they differ",
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON")


async def _replay(args: argparse.Namespace) -> ReplayReport:
    async with open_runtime(load_settings()) as runtime:
        return await replay(runtime, repo=args.repo, apply=args.apply)


def run(args: argparse.Namespace) -> int:
    """Exit 0 when stored state matches the log (or was replaced), 2 when it differs."""
    try:
        report = asyncio.run(_replay(args))
    except ConfigError as exc:
        print(f"mergebot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 1
    except EmbeddedRedisError as exc:
        print(f"mergebot: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"mergebot: cannot replay: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(r) for r in report.repos], indent=2))
    else:
        print(f"replayed {report.entries} events of {len(report.repos)} repos")
        for repo in report.repos:
            state = "matches the log" if not repo.differences else "differs from the log"
            print(f"{repo.repo} ({repo.base}): {repo.entries} events, stored state {state}")
            for line in repo.differences:
                print(f"  - {line}")
            for item in repo.in_flight:
                print(f"  in flight (being integrated): {item}")
            if repo.applied:
                print("  replaced with the rebuilt projection and queue")
            if repo.skipped:
                print(f"  not replaced: {repo.skipped}")
    unresolved = [r for r in report.repos if r.differences and not r.applied]
    return 2 if unresolved else 0
