"""`mergebot freeze <repo> --reason "…" [--until TIME]`: stop base from moving (SPEC §13).

Appends `queue_frozen`. Candidates keep being queued, built and checked; the integrator holds a
checked candidate right before it would move base, until `mergebot unfreeze` (or `--until`
passes). Status, the queue API, the dashboard, the check run and chat say why and by whom.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from mergebot.commands.repo_event import base_of, submit
from mergebot.commands.slug_event import operator
from mergebot.commands.support import CommandError, repo_name
from mergebot.events import EventName
from mergebot.gate import parse_until

HELP = "freeze a repo's queue: base does not move until unfreeze (appends queue_frozen)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", type=repo_name, help="the repo, owner/name")
    parser.add_argument("--reason", required=True, help="why, shown wherever the freeze is")
    parser.add_argument(
        "--until", help="when it ends by itself: 2026-12-02T18:00+00:00, or 90m, 4h, 2d"
    )
    parser.add_argument("--by", help="who freezes, kept in the event (default: the OS user)")


def run(args: argparse.Namespace) -> int:
    by = operator(args.by)
    now = datetime.now(UTC)
    fields: dict[str, str] = {"reason": args.reason, "by": by, "at": now.isoformat()}
    if args.until:
        try:
            fields["until"] = parse_until(args.until, now).isoformat()
        except ValueError as exc:
            print(f"mergebot: --until: {exc}", file=sys.stderr)
            return 2
    try:
        base = base_of(args.repo)
    except CommandError as exc:
        return exc.exit()
    code, stored, _status = submit(EventName.QUEUE_FROZEN, args.repo, base=base, **fields)
    if code:
        return code
    until = f" until {fields['until']}" if "until" in fields else ""
    print(f"queue_frozen for {args.repo} ({base}) by {by}{until}: "
          f"{'stored' if stored else 'already stored'}")  # fmt: skip
    print(f"  {base} does not move until `mergebot unfreeze {args.repo}`; "
          "candidates are still queued and checked")  # fmt: skip
    return 0
