"""`mergebot cancel <repo> <slug>`: take a slug's candidate out of the queue (SPEC §7).

Appends `candidate_withdrawn` with reason `cancelled`; the processor cancels the slug's queued or
blocked item (an item being integrated is left to the lease holder, which re-checks readiness
before it moves the base). A later `finalize_ready` of the slug makes it a candidate again.
"""

from __future__ import annotations

import argparse

from mergebot.commands.slug_event import add_target_arguments, operator, print_candidates, submit
from mergebot.events import EventName, WithdrawReason

HELP = "withdraw a slug's candidate from the queue (appends candidate_withdrawn, cancelled)"

_CANCELLABLE = frozenset({"queued", "blocked", "waiting", "in_progress"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--by", help="who asks, kept in the event (default: the OS user)")


def run(args: argparse.Namespace) -> int:
    by = operator(args.by)
    code, outcome = submit(
        EventName.CANDIDATE_WITHDRAWN,
        args.repo,
        args.slug,
        reason=WithdrawReason.CANCELLED.value,
        requested_by=by,
    )
    if outcome is None:
        return code
    verb = "stored" if outcome.stored else "already stored"
    print(f"candidate_withdrawn (cancelled) for {args.repo} {args.slug} by {by}: {verb}")
    print_candidates(outcome, args.slug)
    if any(c["status"] in _CANCELLABLE for c in outcome.candidates):
        print("  the worker cancels it when it processes the event")
    else:
        print(f"  note: {args.slug} has nothing waiting or queued, so the cancel changes nothing")
    return 0
