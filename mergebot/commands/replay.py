"""`mergebot replay`: rebuild projection and queue from the event log; report (or fix) drift."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from mergebot.commands.support import CommandError, add_repo_option, in_runtime
from mergebot.rebuild import ENTRIES_PER_PROCESS, replay

HELP = "rebuild the readiness projection and queue from the event log and report differences"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_option(parser)
    parser.add_argument(
        "--apply",
        action="store_true",
        help="replace the stored projection and queue with the rebuilt ones where they differ",
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        help="processes to share the repos out to (default: one per CPU, up to 4; a log of "
        f"fewer than {ENTRIES_PER_PROCESS:,} entries per process is replayed in one)",
    )


def _jobs(text: str) -> int:
    """An argparse `type`: a whole number of processes, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return value


def run(args: argparse.Namespace) -> int:
    """Exit 0 when stored state matches the log (or was replaced), 2 when it differs."""
    try:
        report = in_runtime(
            lambda runtime: replay(runtime, repo=args.repo, apply=args.apply, jobs=args.jobs),
            doing="replay",
        )
    except CommandError as exc:
        return exc.exit()
    if args.json:
        print(json.dumps([asdict(r) for r in report.repos], indent=2))
    else:
        shared = f" in {report.processes} processes" if report.processes > 1 else ""
        print(f"replayed {report.entries} events of {len(report.repos)} repos{shared}")
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
