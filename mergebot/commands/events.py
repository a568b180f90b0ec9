"""`mergebot events`: the stored envelopes, newest last, read straight from the event log."""

from __future__ import annotations

import argparse
import json
import sys

from mergebot.commands.support import CommandError, add_repo_option, in_runtime
from mergebot.events import Envelope

HELP = "print the stored events (envelopes), newest last"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_option(parser, "only the events of this repo (owner/name)")
    parser.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="a JSON array of the envelopes")


_SUMMARY_FIELDS = ("slug", "branch", "sha", "reason", "review_round", "reviewer_session_id")


def summary(envelope: Envelope) -> str:
    """One line per event: when, what, which repo, its key fields and its id."""
    payload = envelope.payload
    parts = []
    for key in _SUMMARY_FIELDS:
        value = payload.get(key)
        if value is None:
            continue
        text = str(value)[:7] if key == "sha" else str(value)
        parts.append(f"{key}={text}")
    when = envelope.received_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{when}  {envelope.name.value:<21} {envelope.repo}  {' '.join(parts)}"
        f"  id={envelope.id} source={envelope.source}"
    )


def run(args: argparse.Namespace) -> int:
    try:
        entries = in_runtime(
            lambda runtime: runtime.eventlog.tail(limit=args.limit, repo=args.repo),
            doing="read the event log",
        )
    except CommandError as exc:
        return exc.exit()
    if args.json:
        print(json.dumps([e.envelope.model_dump(mode="json") for e in entries], indent=2))
    elif not entries:
        print("no events stored" + (f" for {args.repo}" if args.repo else ""), file=sys.stderr)
    else:
        for entry in entries:
            print(summary(entry.envelope))
    return 0
