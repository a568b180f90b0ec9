"""`mergebot priority <repo> <slug> <n>`: set a slug's place in the queue (SPEC §5, §13).

Appends `priority_set`; the processor gives the slug's queue item the new priority, and the
integrator takes the queued candidate with the highest priority next (then the oldest
`ready_at`). A candidate already being integrated is never pre-empted. The value is bounded
(`mergebot.events.MIN_PRIORITY`..`MAX_PRIORITY`); anything else is a usage error (exit code 2)
and nothing is stored.
"""

from __future__ import annotations

import argparse

from mergebot.commands.slug_event import add_target_arguments, operator, print_candidates, submit
from mergebot.events import MAX_PRIORITY, MIN_PRIORITY, EventName, parse_priority

HELP = "set a slug's queue priority (higher first, default 0; appends priority_set)"


def priority_value(text: str) -> int:
    """An argparse `type`: a bounded whole number, with the usage error saying what is
    accepted (the same words as the refusal of a `/mergebot priority` comment)."""
    try:
        return parse_priority(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument(
        "priority",
        type=priority_value,
        help=f"higher is integrated first; {MIN_PRIORITY}..{MAX_PRIORITY}, default 0",
    )
    parser.add_argument("--by", help="who asks, kept in the event (default: the OS user)")


def run(args: argparse.Namespace) -> int:
    by = operator(args.by)
    code, outcome = submit(
        EventName.PRIORITY_SET, args.repo, args.slug, priority=args.priority, set_by=by
    )
    if outcome is None:
        return code
    verb = "stored" if outcome.stored else "already stored"
    print(f"priority_set {args.priority} for {args.repo} {args.slug} by {by}: {verb}")
    print_candidates(outcome, args.slug)
    print("  the worker reorders the queue when it processes the event")
    return 0
