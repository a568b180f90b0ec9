"""`mergebot resume <repo> <slug>`: ask mergebot to re-queue a blocked candidate (SPEC §7).

Appends a `resume_requested` event; the processor moves the slug's blocked item back to the queue
(the same path as the `/mergebot resume` PR comment). Nothing blocked → the event is still stored,
and the command says it will change nothing.
"""

from __future__ import annotations

import argparse

from mergebot.commands.slug_event import add_target_arguments, operator, print_candidates, submit
from mergebot.events import EventName

HELP = "re-queue the blocked candidate of a slug (appends resume_requested)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--by", help="who asks (default: the OS user)")


def run(args: argparse.Namespace) -> int:
    by = operator(args.by)
    code, outcome = submit(EventName.RESUME_REQUESTED, args.repo, args.slug, requested_by=by)
    if outcome is None:
        return code
    verb = "stored" if outcome.stored else "already stored"
    print(f"resume_requested for {args.repo} {args.slug} by {by}: {verb}")
    print_candidates(outcome, args.slug)
    if any(c["status"] == "blocked" for c in outcome.candidates):
        print("  the worker re-queues the blocked candidate when it processes the event")
    else:
        print(f"  note: nothing of {args.slug} is blocked, so the resume changes nothing")
    return 0
