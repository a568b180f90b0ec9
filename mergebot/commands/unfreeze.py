"""`mergebot unfreeze <repo>`: let base move again (SPEC §13).

Appends `queue_unfrozen`: it ends a person's freeze, and opens a queue that a red base closed
(for that base sha; a later red tip closes it again). A freeze window of the config is not
lifted by it: change the config for that.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from mergebot.commands.repo_event import base_of, submit
from mergebot.commands.slug_event import operator
from mergebot.commands.support import CommandError, repo_name
from mergebot.events import EventName

HELP = "unfreeze a repo's queue: base may move again (appends queue_unfrozen)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", type=repo_name, help="the repo, owner/name")
    parser.add_argument("--by", help="who unfreezes, kept in the event (default: the OS user)")


def run(args: argparse.Namespace) -> int:
    by = operator(args.by)
    try:
        base = base_of(args.repo)
    except CommandError as exc:
        return exc.exit()
    at = datetime.now(UTC).isoformat()
    code, stored, status = submit(EventName.QUEUE_UNFROZEN, args.repo, base=base, by=by, at=at)
    if code:
        return code
    print(f"queue_unfrozen for {args.repo} ({base}) by {by}: "
          f"{'stored' if stored else 'already stored'}")  # fmt: skip
    still = (status or {}).get("frozen")
    if still and still.get("kind") == "window":
        print(f"  note: {still['reason']} is still open; base moves after it ends")
    return 0
